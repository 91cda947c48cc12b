# Build and run tradeweb. `make run` starts the whole stack on a fresh machine;
# `make test` runs the test suite. Stamp files keep repeated runs fast.

PYTHON ?= python3
VENV := .venv
PORT ?= 8000
PYTEST_ARGS ?=
REDIS_URL ?= redis://127.0.0.1:6379/0
export REDIS_URL

.PHONY: install chromium redis migrate run test bench screenshots clean

install: $(VENV)/.installed node_modules/.installed static/vendor/.installed

$(VENV)/.installed: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

static/vendor/.installed: node_modules/.installed
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/
	cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js static/vendor/
	touch $@

# Browser tests drive Debian's Chromium; Playwright's own browser download
# cannot be used here.
chromium:
	@if [ -x /usr/bin/chromium ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium is missing: run 'sudo apt-get install chromium' (Debian/Ubuntu)." >&2; \
		exit 1; \
	fi

redis: $(VENV)/.installed
	VENV_PYTHON=$(VENV)/bin/python scripts/ensure-redis

migrate: install
	$(VENV)/bin/python manage.py migrate --noinput

# Honcho sets PORT itself for every process, so the web port travels as WEB_PORT.
run: install redis migrate
	$(VENV)/bin/python manage.py seed_demo
	@echo "tradeweb is starting at http://127.0.0.1:$(PORT)/"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" WEB_PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile

test: install chromium redis
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/python -m benchmarks

# The README's screenshots (docs/screenshots/), from a desk of their own in a temporary database.
screenshots: install chromium redis
	$(VENV)/bin/python scripts/screenshots.py

clean:
	@if [ -f .run/redis.pid ]; then kill "$$(cat .run/redis.pid)" 2>/dev/null || true; fi
	rm -rf $(VENV) node_modules static/vendor .run
	rm -f *.sqlite3 *.sqlite3-*
