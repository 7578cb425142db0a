"""Trellis settings: one module, driven by the environment (django-environ).

With no environment set, Trellis runs on the *embedded default*: SQLite under var/, the
in-memory channel layer, a filesystem Celery broker and the locmem cache, so nothing but
Python is needed. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
Every variable is listed in README.md ("Configuration").
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from corsheaders.defaults import default_headers

# A process's share of the cores (TRELLIS_TORCH_THREADS, set by run_suite and the Celery
# worker) caps OpenBLAS (numpy, scipy) too, before either loads: left at every core, the
# recommenders' BLAS calls ran two threads per request, 33 ms of CPU for a 17 ms answer
# (21 ms capped, same wall time), and concurrent requests fought over the cores.
if os.environ.get("TRELLIS_TORCH_THREADS"):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ["TRELLIS_TORCH_THREADS"])

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRELLIS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional, never committed

DEBUG = env.bool("DJANGO_DEBUG", default=False)
PRODUCTION = env.bool("DJANGO_PRODUCTION", default=False)


def _install_secret_key(path: Path) -> str:
    """A random key made once per install and kept in ``path`` (mode 0600), so that `make run`
    works out of the box without a key anyone else knows. The ``django-insecure-`` prefix makes
    ``check --deploy`` flag it (security.W009): production sets DJANGO_SECRET_KEY instead."""
    if not path.exists():
        fresh = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("django-insecure-" + secrets.token_urlsafe(48))
        try:
            os.link(fresh, path)  # atomic and never overwrites: concurrent first starts agree on one key
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    return path.read_text().strip()


# Production (DJANGO_PRODUCTION=1) refuses to start without DJANGO_SECRET_KEY.
if PRODUCTION:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _install_secret_key(VAR_DIR / "secret_key")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list(
    "DJANGO_CSRF_TRUSTED_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc files served from this site (no CDN)
    "channels",
    "django_celery_results",
    "apps.accounts",
    "apps.core",
    "apps.mlops",
    "apps.serving",
    "apps.audit",
    "corsheaders",  # the recommendation widget only (CORS_URLS_REGEX)
    "apps.recommend",
    "apps.sentiment",
    "apps.chat",
]

# Django's own middleware through apps.core.async_middleware: same classes, but under ASGI
# their hooks run on the event loop instead of a thread hop each (see that module).
MIDDLEWARE = [
    "apps.core.async_middleware.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",  # async-capable WhiteNoise fork: no thread hop
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware, as django-cors-headers asks
    "apps.core.async_middleware.CSPMiddleware",  # Content-Security-Policy header (see "Security" below)
    "apps.core.async_middleware.SessionMiddleware",
    "apps.core.async_middleware.CommonMiddleware",
    "apps.core.async_middleware.CsrfViewMiddleware",
    "apps.core.async_middleware.AuthenticationMiddleware",
    "apps.core.async_middleware.MessageMiddleware",
    "apps.core.async_middleware.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into a 429 page (apps.accounts.views.locked_out).
    "axes.middleware.AxesMiddleware",
]
# Django's checks for these three look for its own class paths; apps.core.async_middleware
# registers the same checks by class (trellis.security.W001-W003), subclasses included.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
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
                "apps.accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database: SQLite under var/ unless DATABASE_URL (e.g. postgres://user@host:5432/db).
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'trellis.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the ASGI server and the Celery worker read while the other writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file, not memory, so that worker and server processes started by tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-trellis-{os.getpid()}.sqlite3")}
else:
    # 0: a connection per request. Under ASGI each request's sync code may run on another
    # thread, and persistent connections pile up per thread: the load test (bench/load) had
    # two servers holding 99 of PostgreSQL's 100 connections at 64 users with 60 here.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

REDIS_URL = env.str("REDIS_URL", default="")

# --- Proxies: how many reverse proxies stand in front of the ASGI server. 0 (the default):
# X-Forwarded-For / X-Forwarded-Proto come from the client and are never trusted.
TRELLIS_NUM_PROXIES = env.int("TRELLIS_NUM_PROXIES", default=0)

# --- Cache: Redis when configured, else per-process memory.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "trellis"}}
# API throttles and login limits must count across every process (several ASGI servers, or
# one restarted): Redis when configured, else a table in the database every process shares
# (apps.accounts.models.ThrottleCacheEntry). Never per-process memory.
if REDIS_URL:
    CACHES["throttle"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "throttle"}
else:
    CACHES["throttle"] = {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                          "LOCATION": "accounts_throttle_cache",
                          # One row per client address and per user; cull beyond this many (rows).
                          "OPTIONS": {"MAX_ENTRIES": 20_000}}

# --- Channels: https://channels.readthedocs.io/en/stable/topics/channel_layers.html
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery (read by config/celery.py with namespace CELERY_).
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange tables (kombu defaults to ./control, i.e. wherever the process started).
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # A message unacknowledged this long is handed to another worker (acks_late); training
    # jobs resume from checkpoints, so redelivery is safe. Seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_GPU_QUEUE = env.str("CELERY_GPU_QUEUE", default="")  # e.g. "gpu" when GPU workers exist

# --- Auth
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username + address before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

# API tokens (django-rest-knox): stored as SHA-512 digests, shown once, expiring after
# TRELLIS_TOKEN_TTL_HOURS (720 h = 30 days). https://jazzband.github.io/django-rest-knox/settings/
TRELLIS_TOKEN_TTL_HOURS = env.int("TRELLIS_TOKEN_TTL_HOURS", default=720)
if TRELLIS_TOKEN_TTL_HOURS <= 0:
    raise ValueError("TRELLIS_TOKEN_TTL_HOURS must be a positive number of hours")
KNOX_TOKEN_MODEL = "accounts.ApiToken"  # noqa: S105 - a model name. knox's own model is swapped out: integer ids
REST_KNOX = {"TOKEN_TTL": timedelta(hours=TRELLIS_TOKEN_TTL_HOURS), "AUTH_HEADER_PREFIX": "Token"}
# Seconds each server process remembers a token check for the inference API (apps.accounts.token_cache):
# a token revoked in another process stops working here within this (at once in the same one); 0: off.
TRELLIS_TOKEN_CACHE_S = env.float("TRELLIS_TOKEN_CACHE_S", default=5.0)
# knox ships migrations for its own (swapped-out, never used) token table: skip them.
MIGRATION_MODULES = {"knox": None}
# WebSocket tickets (POST /api/auth/ws-ticket/): seconds a ticket stays valid; each opens one socket.
TRELLIS_WS_TICKET_TTL_S = 60

# Login lockout (django-axes): TRELLIS_LOGIN_FAILURE_LIMIT wrong passwords for one username
# from one address lock that pair for TRELLIS_LOGIN_LOCKOUT_MINUTES, on the login page, the
# admin and the token API alike. Attempts live in the database, so every process sees them.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AXES_FAILURE_LIMIT = env.int("TRELLIS_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("TRELLIS_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lock ends on time, whatever is tried meanwhile
AXES_RESET_ON_SUCCESS = True
# The client address as DRF's throttles see it: X-Forwarded-For only behind TRELLIS_NUM_PROXIES proxies.
AXES_CLIENT_IP_CALLABLE = "apps.accounts.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
# Successful logins are not logged row by row (the table would grow without bound); failures
# and lockouts still are, and the audit log records the changes that matter.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no banner on every start; failures and lockouts are still logged
# Per-username limit on the token API, from any address (the per-address limit is "anon").
TRELLIS_THROTTLE_LOGIN_USERNAME = env.str("TRELLIS_THROTTLE_LOGIN_USERNAME", default="30/hour")

# --- Request size limits (bytes). JSON/form bodies stay small; uploads (datasets, CSV
# imports) get their own, larger limit. Anything over -> 413 in the API's error shape.
TRELLIS_MAX_BODY_BYTES = env.int("TRELLIS_MAX_BODY_BYTES", default=1 * 1024 * 1024)
TRELLIS_MAX_UPLOAD_BYTES = env.int("TRELLIS_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TRELLIS_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
WEBSOCKET_MAX_FRAME_BYTES = env.int("TRELLIS_MAX_WS_FRAME_BYTES", default=64 * 1024)

# --- Outbound requests (feeds, webhooks: URLs users type) go through apps.core.outbound,
# which refuses private, loopback, link-local and other non-public addresses. CIDRs listed
# here are allowed all the same (e.g. "10.20.0.0/16" for an intranet feed server).
TRELLIS_OUTBOUND_ALLOW_NETWORKS = env.list("TRELLIS_OUTBOUND_ALLOW_NETWORKS", default=[])

# --- REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.TrellisAutoSchema",  # documents the framework's error responses
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.accounts.throttling.AnonRateThrottle",
        "apps.accounts.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("TRELLIS_THROTTLE_ANON", default="60/minute"),
        "user": env.str("TRELLIS_THROTTLE_USER", default="1200/minute"),
        # Inference API (apps/serving), per API token: they replace "user" on those endpoints.
        "serving_embeddings": env.str("TRELLIS_THROTTLE_EMBEDDINGS", default="3000/minute"),
        "serving_chat": env.str("TRELLIS_THROTTLE_CHAT", default="120/minute"),
        "serving_classify": env.str("TRELLIS_THROTTLE_CLASSIFY", default="3000/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Throttles key anonymous clients on REMOTE_ADDR, or on X-Forwarded-For only as far as
    # TRELLIS_NUM_PROXIES trusted proxies wrote it (0: a client-sent header is ignored).
    "NUM_PROXIES": TRELLIS_NUM_PROXIES,
}

# --- Inference API (apps/serving): per-request limits (bodies are capped by TRELLIS_MAX_BODY_BYTES).
TRELLIS_SERVING_MAX_TEXTS = env.int("TRELLIS_SERVING_MAX_TEXTS", default=256)  # texts per request
# POST /v1/embeddings from a remembered API token answered ahead of Django's stack
# (apps.serving.fastpath; same checks and answers). 0: every request through Django.
TRELLIS_EMBEDDINGS_FAST_PATH = env.bool("TRELLIS_EMBEDDINGS_FAST_PATH", default=True)
TRELLIS_SERVING_MAX_TEXT_CHARS = env.int("TRELLIS_SERVING_MAX_TEXT_CHARS", default=10_000)  # characters per text
TRELLIS_SERVING_MAX_TOKENS = env.int("TRELLIS_SERVING_MAX_TOKENS", default=1024)  # largest max_tokens of a chat reply

SPECTACULAR_SETTINGS = {
    "TITLE": "Trellis API",
    "DESCRIPTION": "Customer-service chat, financial sentiment and recommendation on one ML core.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI (/api/docs/) and ReDoc (/api/redoc/) from drf-spectacular-sidecar's static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Stable enum names, so another app's `role` or `status` field cannot clash with these.
    "ENUM_NAME_OVERRIDES": {
        "ModelRoleEnum": "apps.mlops.models.ModelRole",
        "TrainingJobStatusEnum": "apps.mlops.models.TrainingJob.Status",
        "ModelVersionStatusEnum": "apps.mlops.models.ModelVersion.Status",
        "RecommendRunStatusEnum": "apps.recommend.models.BackgroundRun.Status",
        "ABTestStatusEnum": "apps.recommend.models.ABTest.Status",
        "RecommendEventKindEnum": "apps.recommend.models.EventKind",
        "CatalogueImportFormatEnum": "apps.recommend.models.CatalogueImport.Format",
        "SentimentAlertStatusEnum": "apps.sentiment.models.Alert.Status",
        "SentimentSourceKindEnum": "apps.sentiment.models.Source.Kind",
        "SentimentLabelEnum": "apps.sentiment.models.Label",
        "ChatConversationStatusEnum": "apps.chat.models.Conversation.Status",
    },
}

# --- Internationalisation
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files: servestatic (WhiteNoise's async fork) serves them (compressed, hashed in production).
# Front-end libraries are installed by npm (package.json) into node_modules at setup.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor", BASE_DIR / "node_modules")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(VAR_DIR / "media")}},
    "staticfiles": {
        "BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
if not PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)  # servestatic warns on every request when it is missing

# --- ML core: where fine-tuned versions live; ml/ reads TRELLIS_ARTIFACTS_DIR itself.
ARTIFACTS_DIR = Path(env.str("TRELLIS_ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))
os.environ.setdefault("TRELLIS_ARTIFACTS_DIR", str(ARTIFACTS_DIR))
# Training jobs one user may have queued or running at once (a job holds a worker for
# minutes to hours); one more is refused with 429 until one ends.
TRELLIS_MAX_ACTIVE_JOBS_PER_USER = env.int("TRELLIS_MAX_ACTIVE_JOBS_PER_USER", default=3)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from disk only
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# --- Security (production): https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# X-Forwarded-Proto decides request.is_secure() (SSL redirect, secure cookies, CSRF origin) only
# behind a proxy that sets it; with none, any client could claim https.
if TRELLIS_NUM_PROXIES > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp 4): https://django-csp.readthedocs.io/en/latest/configuration.html
# Templates and static/ carry no inline script, style attribute or event handler, so nothing
# inline is allowed. connect-src 'self' also covers same-origin ws:/wss: (CSP Level 3: the
# job page's socket works in Chromium without listing them). Chart.js draws on a canvas and
# sets sizes through the CSSOM, which style-src does not restrict.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# The OpenAPI schema (/api/schema/) and Swagger UI (/api/docs/) are for signed-in users
# (session or API token) unless this is set: they list every endpoint and field.
TRELLIS_PUBLIC_API_DOCS = env.bool("TRELLIS_PUBLIC_API_DOCS", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Query strings never reach a log: they may carry a socket ticket or another secret.
    # The filter attaches itself to these loggers (listing them under "loggers" would drop
    # the handlers uvicorn gave them, and bring back an access log turned off by --no-access-log).
    "filters": {
        "redact_query": {
            "()": "apps.core.logging.redact_query_strings",
            "loggers": ["uvicorn.error", "uvicorn.access", "daphne.server", "daphne.http_protocol",
                        "daphne.ws_protocol", "django.request", "django.server"],
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("TRELLIS_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
SERVER_NAME = env.str("TRELLIS_SERVER_NAME", default=os.uname().nodename + f":{os.getpid()}")

# Serve static files straight from the finders in the embedded default (no collectstatic
# step); production serves the collected, hashed, compressed copies.
SERVESTATIC_USE_FINDERS = not PRODUCTION

# Management commands that load each app's demo data into the embedded default (`make run`).
TRELLIS_DEMO_COMMANDS: list[list[str]] = [["create_demo_users"], ["mlops_demo"], ["recommend_demo"], ["kb_demo"],
                                          ["chat_demo"], ["sentiment_demo"]]

# --- Recommendations (apps/recommend). Cross-origin requests reach the widget endpoints only;
# an origin passes when an active widget key lists it (apps/recommend/signals.py).
# https://github.com/adamchainz/django-cors-headers#configuration
CORS_URLS_REGEX = r"^/api/recommend/widget/.*$"
CORS_ALLOW_CREDENTIALS = False  # the widget sends its public key, never cookies
# The chat widget (apps/chat/widget_signals.py): CORS on these paths only (start a conversation,
# read one), for the origins an active widget route lists; the widget sends its conversation
# token in a header, never cookies.
TRELLIS_CHAT_CORS_URLS_REGEX = r"^/api/chat/conversations/(?:[0-9a-fA-F-]{36}/)?$"
CORS_ALLOW_HEADERS = (*default_headers, "x-conversation-token")
TRELLIS_RECOMMEND_DIR = Path(env.str("TRELLIS_RECOMMEND_DIR", default=str(ARTIFACTS_DIR / "recommend")))
TRELLIS_RECOMMEND_MAX_K = 100  # largest k of a recommendation or similar-items request
TRELLIS_RECOMMEND_MAX_EVENTS = 500  # events per batch: one request stays well under a second

# --- Sentiment ingestion and scoring (apps/sentiment). Sizes are per document / request / file.
TRELLIS_SENTIMENT_MAX_DOCUMENT_CHARS = env.int("TRELLIS_SENTIMENT_MAX_DOCUMENT_CHARS", default=20_000)  # characters
TRELLIS_SENTIMENT_MAX_BATCH = env.int("TRELLIS_SENTIMENT_MAX_BATCH", default=500)  # documents per push request
TRELLIS_SENTIMENT_MAX_UPLOAD_BYTES = env.int("TRELLIS_SENTIMENT_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
# Documents per scoring transaction: 64 headlines x 128 tokens is one MiniLM forward pass of
# ~0.3 s on a CPU thread, so a worker holds its row locks (or SQLite's write lock) that long.
TRELLIS_SENTIMENT_SCORING_BATCH = env.int("TRELLIS_SENTIMENT_SCORING_BATCH", default=64)
TRELLIS_SENTIMENT_FEED_TIMEOUT_S = env.float("TRELLIS_SENTIMENT_FEED_TIMEOUT_S", default=10.0)  # connect, each read
TRELLIS_SENTIMENT_FEED_MAX_BYTES = env.int("TRELLIS_SENTIMENT_FEED_MAX_BYTES", default=5 * 1024 * 1024)
# TEST ONLY: a dotted path to a factory of a sentiment model used instead of the active version
# (e.g. "tests.sentiment.fakes.keyword_model"; the exactly-once test's worker sleeps in it to be killed mid-batch).
TRELLIS_SENTIMENT_MODEL_OVERRIDE = env.str("TRELLIS_SENTIMENT_MODEL_OVERRIDE", default="")
if PRODUCTION and TRELLIS_SENTIMENT_MODEL_OVERRIDE:
    raise ValueError("TRELLIS_SENTIMENT_MODEL_OVERRIDE is for tests; unset it in production")

# --- Sentiment alerts (apps/sentiment/services/alerting.py, delivery.py). A failed delivery is
# retried after BASE_S, then twice as long each time up to MAX_S, MAX_ATTEMPTS attempts in all.
TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS = env.int("TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS", default=6)
TRELLIS_SENTIMENT_ALERT_RETRY_BASE_S = env.float("TRELLIS_SENTIMENT_ALERT_RETRY_BASE_S", default=30.0)
TRELLIS_SENTIMENT_ALERT_RETRY_MAX_S = env.float("TRELLIS_SENTIMENT_ALERT_RETRY_MAX_S", default=3600.0)
TRELLIS_SENTIMENT_ALERT_DOCUMENTS = 50  # triggering documents kept with an alert
# Links in alert emails and webhooks point here (the dashboard's public address).
TRELLIS_SENTIMENT_ALERT_SITE_URL = env.str("TRELLIS_SENTIMENT_ALERT_SITE_URL", default="http://127.0.0.1:8000")
CELERY_IMPORTS = ["apps.sentiment.alert_tasks"]  # autodiscovery finds only tasks.py modules

# --- Knowledge base of the chat app (apps/chat). The FAISS index of article passages lives here.
TRELLIS_KB_DIR = Path(env.str("TRELLIS_KB_DIR", default=str(ARTIFACTS_DIR / "kb")))
TRELLIS_KB_MAX_IMPORT_BYTES = env.int("TRELLIS_KB_MAX_IMPORT_BYTES", default=2 * 1024 * 1024)  # per file
TRELLIS_KB_MAX_IMPORT_FILES = 50  # files per import request
TRELLIS_KB_MAX_IMPORT_ITEMS = 2000  # articles per import: parsed in the request (~1 s), indexed by a task
TRELLIS_KB_MAX_BODY_CHARS = 100_000  # characters of one article's Markdown
# Passages: ~160 words with 40 overlapping (MiniLM reads 256 word pieces, ~190 words; longer text is cut).
TRELLIS_KB_CHUNK_WORDS = 160
TRELLIS_KB_CHUNK_OVERLAP = 40
TRELLIS_KB_MAX_K = 50  # largest k of a search request

# --- Conversations and the reply pipeline (apps/chat/services/conversations.py, reply.py).
# A visitor's signed conversation token is accepted this long after it was issued (seconds).
TRELLIS_CHAT_TOKEN_MAX_AGE_S = env.int("TRELLIS_CHAT_TOKEN_MAX_AGE_S", default=30 * 24 * 3600)
# New conversations per client address (POST /api/chat/conversations/), DRF rate syntax.
TRELLIS_THROTTLE_CHAT_START = env.str("TRELLIS_THROTTLE_CHAT_START", default="20/hour")
TRELLIS_CHAT_PASSAGES = env.int("TRELLIS_CHAT_PASSAGES", default=3)  # passages retrieved per question
# Best passage cosine score below which the assistant says it does not know (MiniLM; measured
# on the ABCD KB: README "Chat: conversations and the reply pipeline" has the figures).
TRELLIS_CHAT_MIN_PASSAGE_SCORE = env.float("TRELLIS_CHAT_MIN_PASSAGE_SCORE", default=0.30)
TRELLIS_CHAT_MAX_REPLY_TOKENS = env.int("TRELLIS_CHAT_MAX_REPLY_TOKENS", default=160)  # new tokens per reply
TRELLIS_CHAT_MAX_MESSAGE_CHARS = env.int("TRELLIS_CHAT_MAX_MESSAGE_CHARS", default=2000)  # one customer message
# An ASGI process loads the chat models at start-up on a background thread (apps/chat/services/
# warmup.py), so the first customer does not wait for them; run_suite sets it for its server.
TRELLIS_CHAT_WARM = env.bool("TRELLIS_CHAT_WARM", default=False)
# --- The chat sockets (apps/chat/consumers.py): limits a visitor cannot talk their way past.
# A visitor's socket must send {"type": "hello", "token": ...} this soon after connecting (s).
TRELLIS_CHAT_HELLO_TIMEOUT_S = env.float("TRELLIS_CHAT_HELLO_TIMEOUT_S", default=10.0)
# Customer messages per conversation in any 60 s (all its sockets together; counted in the DB).
TRELLIS_CHAT_MESSAGES_PER_MINUTE = env.int("TRELLIS_CHAT_MESSAGES_PER_MINUTE", default=20)
# Frames per socket: a bucket of BURST refilled at RATE per second; an empty bucket closes the
# socket with 4429. Typing frames come at most every ~0.5 s from the widget, so 10/s is a flood.
TRELLIS_CHAT_FRAMES_PER_S = env.float("TRELLIS_CHAT_FRAMES_PER_S", default=10.0)
TRELLIS_CHAT_FRAME_BURST = env.int("TRELLIS_CHAT_FRAME_BURST", default=30)
# Open visitor (not signed-in) sockets per client address, counted in the default cache (Redis
# when configured, so across ASGI servers); one more is refused with 4429.
TRELLIS_CHAT_SOCKETS_PER_IP = env.int("TRELLIS_CHAT_SOCKETS_PER_IP", default=20)
TRELLIS_CHAT_TYPING_INTERVAL_S = 2.0  # a socket's typing indicator is relayed at most this often (s)
# Upper bound of one reply's generation (s): the per-conversation "one reply at a time" lock
# expires after it even if the process that held it died.
TRELLIS_CHAT_REPLY_LOCK_S = env.int("TRELLIS_CHAT_REPLY_LOCK_S", default=300)

# --- Email (sentiment alerts). Django's defaults (SMTP on localhost:25) unless set here.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="trellis@localhost")
