"""Django settings, all from the environment (webapp/env.py fails loudly on bad values).

With nothing set (the `make demo` path): DEBUG off unless asked, SQLite and kombu's filesystem
broker under STORAGE_ROOT, so the service needs no server. DATABASE_URL / CELERY_BROKER_URL point
it at Postgres and Redis everywhere else (docker-compose, k8s, the tests).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from webapp.env import database_from_url, env_bool, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DEBUG = env_bool("DEBUG", False)
STORAGE_ROOT = env_path("STORAGE_ROOT", BASE_DIR / "storage")
# The models a teacher may name (`model`, `adapter`): directories under this folder, by their
# relative names (webapp/studio/model_store.py). /models in the images.
MODEL_ROOT = env_path("MODEL_ROOT", STORAGE_ROOT / "models")

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set: set it to a long random string (e.g. `python -c "
                                   "'import secrets; print(secrets.token_urlsafe(50))'`), or DEBUG=1 for development")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG=1-" + "x" * 20
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",   # Swagger UI's files, served by the app (never a CDN)
    "axes",
    "webapp.studio",
    "worker.apps.WorkerConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before any view or the CSRF check reads a body: size and auth first (webapp/studio/uploads.py).
    "webapp.studio.uploads.UploadGuard",
    # Login lockouts (django-axes): the login form, the admin login and the token endpoint.
    "axes.middleware.AxesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

_database_url = env_str("DATABASE_URL")
DATABASES = {"default": database_from_url(_database_url) if _database_url else {
    "ENGINE": "django.db.backends.sqlite3", "NAME": str(STORAGE_ROOT / "db.sqlite3"), "OPTIONS": {"timeout": 30}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"
# Static files (the dashboard's CSS, JS and its vendored chart library) are served by the app
# itself through WhiteNoise: from STATIC_ROOT after `collectstatic` (the images), else from the
# apps' static folders (a checkout). Nothing is fetched from a CDN.
STATIC_ROOT = env_path("STATIC_ROOT", STORAGE_ROOT / "static")
STORAGES = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
try:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)   # WhiteNoise warns about a missing one
except OSError:
    pass
WHITENOISE_MAX_AGE = 3600
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# The most file bytes one request may carry: a larger Content-Length is refused before a byte is
# read, a chunked body as soon as its running total passes it (webapp/studio/uploads.py).
UPLOAD_MAX_MB = env_int("UPLOAD_MAX_MB", 200, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024          # non-file request bodies
DATA_UPLOAD_MAX_NUMBER_FILES = 50
# Every uploaded file streams to STORAGE_ROOT/incoming (never into memory or /tmp).
FILE_UPLOAD_HANDLERS = ["webapp.studio.uploads.BoundedUploadHandler"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "webapp.studio.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "uploads": env_str("THROTTLE_UPLOADS", "30/hour"),
        "runs": env_str("THROTTLE_RUNS", "120/hour"),
        "token": env_str("THROTTLE_TOKEN", "30/minute"),
        # /recommend (a student's forward pass) and exports (a model export and its check) have
        # budgets of their own: serving recommendations never spends the budget for creating runs.
        "recommend": env_str("THROTTLE_RECOMMEND", "600/minute"),
        "exports": env_str("THROTTLE_EXPORTS", "30/hour"),
    },
    "EXCEPTION_HANDLER": "webapp.studio.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DLLM2Rec Studio API",
    "DESCRIPTION": "Distil an LLM recommender into a fast sequential recommender, and measure what survives.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "webapp.studio.models.Run.Status",
                            "DatasetStatusEnum": "webapp.studio.models.Dataset.Status"},
    # /api/docs/ loads Swagger UI from drf-spectacular-sidecar's static files, as the dashboard
    # loads its chart library: nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# The shared cache: every limit (API throttles, login lockouts) counts here, so all web processes
# and replicas see one count. CACHE_URL=redis://HOST:PORT/DB in compose, k8s and the tests; unset
# (the embedded `make demo` path: one process) it is the local-memory cache and lockouts count in
# the database instead.
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL:
    if not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: expected redis://HOST:PORT/DB (or rediss://, unix://)")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "studio")}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated; empty:
# none, the client is REMOTE_ADDR). webapp/studio/clientip.py.
TRUSTED_PROXIES = [item.strip() for item in env_str("TRUSTED_PROXIES", "").split(",") if item.strip()]
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network (e.g. 10.0.0.0/8)") from None

# Login limits (django-axes) on /accounts/login/, /admin/login/ and /api/auth/token/: after
# LOGIN_FAILURE_LIMIT failures from one client address, or for one username, further attempts are
# refused for LOGIN_COOLOFF_MINUTES (429 on the API, the form with a message in a browser).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "webapp.studio.clientip.client_ip"
AXES_LOCKOUT_CALLABLE = "webapp.studio.lockout.lockout_response"
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if CACHE_URL else "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False

# Celery: JSON only; acks_late + reject_on_worker_lost so a killed worker's task is delivered again;
# the broker's visibility timeout stays above the longest task time limit.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
TASK_TIME_LIMIT = env_int("TASK_TIME_LIMIT", 48 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMIT
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": TASK_TIME_LIMIT + 3600}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker = STORAGE_ROOT / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update({"data_folder_in": str(_broker / "queue"),
                                            "data_folder_out": str(_broker / "queue"),
                                            "processed_folder": str(_broker / "processed"),
                                            "control_folder": str(_broker / "control"),
                                            "store_processed": False})
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queue names are QUEUE_PREFIX + "gpu" / "cpu" (lets several deployments or test sessions share a broker).
QUEUE_PREFIX = env_str("QUEUE_PREFIX", "")
CELERY_TASK_DEFAULT_QUEUE = QUEUE_PREFIX + "cpu"
# A stage delivered more often than this (worker killed mid-stage each time) fails the run.
RUN_MAX_ATTEMPTS = env_int("RUN_MAX_ATTEMPTS", 3, minimum=1)
# A running run whose heartbeat is older than this is taken as lost (its worker died, or the broker
# lost the message) and is enqueued again by the next worker that starts or by `recover_runs`.
RUN_STALE_SECONDS = env_int("RUN_STALE_SECONDS", 900, minimum=1)
# The OpenAI-compatible servers a BIGRec teacher may call (backend openai): comma-separated URL
# prefixes, e.g. http://llm.internal:8000. Empty (the default): none, so no user can make a worker
# send requests to an address of their choosing.
TEACHER_SERVER_URLS = [u.strip() for u in (env_str("TEACHER_SERVER_URLS", "") or "").split(",") if u.strip()]
# The web process loads the distilled students of this many most recently finished runs when it
# starts (webapp/wsgi.py), so the first /recommend after a restart reads no model; 0 turns it off.
STUDENT_PRELOAD = env_int("STUDENT_PRELOAD", 8, minimum=0)

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
