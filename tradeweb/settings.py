"""Django settings, read from the environment with defaults that work on a laptop."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """An environment flag: 1/true/yes/on are true, 0/false/no/off (or empty) are false.

    Anything else stops the start: a misspelt "flase" must not quietly switch a security setting off.
    """
    value = os.environ.get(name)
    if value is None:
        return default
    flag = value.strip().lower()
    if flag in {"1", "true", "yes", "on"}:
        return True
    if flag in {"", "0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a flag: use 1 or 0 (true/false, yes/no, on/off)")


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or ("insecure-local-development-key" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off: export a long random value, e.g. the output of "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    "tradeweb.desk",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # After the others, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
    # Innermost: the one middleware here that runs only synchronously. Under Daphne, every middleware around a
    # synchronous one runs synchronously too, in the view's thread; anywhere else, each one outside it would hop
    # between the event loop and a thread twice per request (about 2 ms of a switch). It answers static files before
    # the view; the ones around it pass them through untouched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "tradeweb.urls"
ASGI_APPLICATION = "tradeweb.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'tradeweb.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A reused connection is checked before use, so a restarted database costs one reconnect, not an error.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a Celery worker or Daphne started by a test sees the test data;
    # WAL and a busy timeout let the web process, the worker and the feed write side by side.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "tradeweb-test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

# Under ASGI every request runs in a thread of its own, so a connection kept per thread (CONN_MAX_AGE) is never
# used twice: each request would open a new PostgreSQL connection (a new server process). The web process
# (`python -m tradeweb.server` turns this on) takes its connections from a pool instead; Celery workers, one thread each,
# keep theirs.
DATABASE_POOL = env_bool("DATABASE_POOL", False)
if DATABASE_POOL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The pool keeps the connections, and checks each before lending it (Django passes CONN_HEALTH_CHECKS on).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": int(os.environ.get("DATABASE_POOL_MIN_SIZE", "2")),
        "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "10")),
        "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT_SECONDS", "10")),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNELS_PREFIX = os.environ.get("CHANNELS_PREFIX", "tradeweb")
# Worker processes report their status (cached orchestrators, memory) under this Redis key prefix.
WORKER_STATUS_PREFIX = f"{CHANNELS_PREFIX}:workers"
# Each worker pool process reports its status this often even when idle (the report lapses after 2 minutes).
WORKER_STATUS_HEARTBEAT_SECONDS = float(os.environ.get("WORKER_STATUS_HEARTBEAT_SECONDS", "30"))
# A queued advance of a market is flagged under this prefix, so candles arriving meanwhile queue no other
# (tradeweb/desk/advance_requests.py); the flag lapses after ADVANCE_REQUEST_SECONDS.
ADVANCE_REQUEST_PREFIX = f"{CHANNELS_PREFIX}:advance-requested"
ADVANCE_REQUEST_SECONDS = float(os.environ.get("ADVANCE_REQUEST_SECONDS", "10"))

# Redis pub/sub carries events to websockets as they are published: no list per channel to pop from, so
# no polling delay between a publish and the consumer (the stored events, not the layer, are the record).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            # redis-py 8 times a socket read out after 5 s by default; the layer's reads may wait
            # longer on a quiet connection (django/channels_redis#422).
            "hosts": [{"address": REDIS_URL, "socket_timeout": 10, "socket_connect_timeout": 5}],
            "prefix": CHANNELS_PREFIX,
        },
    }
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "tradeweb")
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task in hand when the broker connection drops runs to its end (its work is a database transaction,
# and running it again is harmless), rather than being killed with the pool process and its cache.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Celery closes Django's database connection after every task unless told to reuse it; it is closed
# anyway once in this many tasks, and sooner when broken or older than CONN_MAX_AGE (tradeweb/celery.py).
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))

# Backtests started from the desk go to a queue of their own, consumed by workers of their own (the Procfile's and
# compose's `backtests`): a long run never holds up the workers that advance live markets. Empty: the default queue.
BACKTEST_QUEUE = os.environ.get("BACKTEST_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-backtests")
# A running backtest writes and publishes how far it got at most this often (and checks for a cancel as it does).
BACKTEST_PROGRESS_SECONDS = float(os.environ.get("BACKTEST_PROGRESS_SECONDS", "0.2"))
# A running backtest not heard of for this long is taken over by a new delivery of its task (its worker was lost);
# a delivery that finds it heard of more recently leaves it to the worker running it, and looks again this much later.
BACKTEST_SILENT_SECONDS = float(os.environ.get("BACKTEST_SILENT_SECONDS", "120"))

ORCHESTRATOR_CACHE_SIZE = int(os.environ.get("ORCHESTRATOR_CACHE_SIZE", "128"))
WARM_UP_CANDLES = int(os.environ.get("WARM_UP_CANDLES", "500"))
# A strategy whose next candle is missing waits for it; once later candles have waited this long, a
# DATA_GAP event says so.
CANDLE_GAP_GRACE = timedelta(seconds=float(os.environ.get("CANDLE_GAP_GRACE_SECONDS", "30")))
# A worker advances a market at most this many candles per transaction, and for at most this many
# seconds per task before it hands the rest to a new task (so other markets and a shutdown are not held up).
ADVANCE_BATCH_CANDLES = int(os.environ.get("ADVANCE_BATCH_CANDLES", "50"))
ADVANCE_TASK_SECONDS = float(os.environ.get("ADVANCE_TASK_SECONDS", "5"))
# How far a live candle's close may lie beyond this machine's clock before it is refused as "from the future".
CANDLE_CLOCK_TOLERANCE = timedelta(seconds=float(os.environ.get("CANDLE_CLOCK_TOLERANCE_SECONDS", "60")))

# Failed logins are counted per username and, separately, per client address (django-axes);
# at the limit that username or address is locked out for LOGIN_LOCKOUT_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "tradeweb.desk.permissions.PermissionsInOneQuery",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Lockouts are logged with the username and address an operator needs; never the password.
AXES_SENSITIVE_PARAMETERS: list[str] = []
# The client address is REMOTE_ADDR; behind a trusted proxy run Daphne with --proxy-headers
# so that it is the client's, not the proxy's.

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the finders: the app runs without a collectstatic step, offline.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Content-Security-Policy (django-csp) on every response: scripts, styles, images and
# sockets from this origin only; no inline script, no eval, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# HTTPS. With DEBUG off every default is the safe one: plain HTTP is redirected to HTTPS, HSTS
# is sent for a year (subdomains included, preload asked for) and the session and CSRF cookies
# travel over HTTPS only. Each can be switched off by its variable for a plain-HTTP private
# network; with DEBUG on they start off, so `make run` works on http://127.0.0.1.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS") or (0 if DEBUG else 365 * 24 * 3600))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Behind a TLS proxy Django sees plain HTTP; X-Forwarded-Proto says what the browser used. Any
# client can send that header, so it is trusted only when the proxy is known to overwrite it.
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}

# Limits of the event websocket (README, "Websocket protocol"): the largest text frame the consumer
# reads, the messages a connection may send (a burst, then a steady rate per second), and how many
# unsent bytes a client that stops reading may leave on the server before it is dropped.
WEBSOCKET_MAX_FRAME_BYTES = int(os.environ.get("WEBSOCKET_MAX_FRAME_BYTES", str(64 * 1024)))
WEBSOCKET_BURST = int(os.environ.get("WEBSOCKET_BURST", "40"))
WEBSOCKET_RATE = float(os.environ.get("WEBSOCKET_RATE", "20"))
WEBSOCKET_MAX_BUFFER_BYTES = int(os.environ.get("WEBSOCKET_MAX_BUFFER_BYTES", str(1024 * 1024)))
