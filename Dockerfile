# One image for the web, worker and feed services of docker-compose.yml.

# Stage 1: fetch the browser libraries with npm and keep only the two files served.
FROM node:20-slim AS vendor
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund \
    && mkdir vendor \
    && cp node_modules/htmx.org/dist/htmx.min.js vendor/ \
    && cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js vendor/

# Stage 2: the Python application.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY manage.py ./
COPY tradeweb/ tradeweb/
COPY orchestrator/ orchestrator/
COPY strategies/ strategies/
COPY templates/ templates/
COPY static/ static/
COPY data/ data/
COPY --from=vendor /build/vendor/ static/vendor/

RUN useradd --create-home --uid 1000 tradeweb
USER tradeweb

EXPOSE 8000
CMD ["python", "-m", "tradeweb.server", "-b", "0.0.0.0", "-p", "8000", "tradeweb.asgi:application"]
