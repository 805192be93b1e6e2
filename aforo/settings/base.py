"""Settings shared by every environment. Every value comes from the environment
(django-environ), with defaults that work on one machine; `.env.example` lists them all."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="dev-insecure-change-me-aforo")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "aforo",
    "catalog",
    "metering",
    "billing",
    "wallets",
    "notify",
    "consumers",
]

MIDDLEWARE = [
    "aforo.middleware.ApiJsonErrorsMiddleware",  # outermost: sees every error response
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aforo.urls"
WSGI_APPLICATION = "aforo.wsgi.application"

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

DATABASE_URL = env.str("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/aforo")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="aforo"),
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard-usage"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Kafka -------------------------------------------------------------------------------
# Unset KAFKA_BOOTSTRAP_SERVERS means "the embedded broker the dev runner starts".
KAFKA_EMBEDDED = not env.str("KAFKA_BOOTSTRAP_SERVERS", default="")
EMBEDDED_BROKER_ADDRESS = env.str("EMBEDDED_BROKER_ADDRESS", default="127.0.0.1:9092")
KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="") or EMBEDDED_BROKER_ADDRESS
KAFKA_TOPIC_REPLICATION = env.int("KAFKA_TOPIC_REPLICATION", default=1)
KAFKA_TOPIC_USAGE = env.str("KAFKA_TOPIC_USAGE", default="usage.events.v1")
KAFKA_TOPIC_USAGE_DLQ = env.str("KAFKA_TOPIC_USAGE_DLQ", default="usage.events.dlq.v1")
KAFKA_TOPIC_RATED = env.str("KAFKA_TOPIC_RATED", default="usage.rated.v1")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=4)
KAFKA_CONSUMER_GROUP_USAGE = env.str("KAFKA_CONSUMER_GROUP_USAGE", default="aforo-usage-rater")
# The alerts consumer (`run_consumer alerts`) reads the rated topic; what it cannot read goes here.
KAFKA_TOPIC_RATED_DLQ = env.str("KAFKA_TOPIC_RATED_DLQ", default="usage.rated.dlq.v1")
KAFKA_CONSUMER_GROUP_ALERTS = env.str("KAFKA_CONSUMER_GROUP_ALERTS", default="aforo-alerts")
# How long the ingest API waits for the broker to acknowledge a write before answering 503.
KAFKA_PRODUCE_TIMEOUT_MS = env.int("KAFKA_PRODUCE_TIMEOUT_MS", default=5000)
# Consumer group liveness: librdkafka defaults rejoin slowly on the embedded broker.
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=6000)
KAFKA_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_HEARTBEAT_INTERVAL_MS", default=1000)
KAFKA_FETCH_WAIT_MAX_MS = env.int("KAFKA_FETCH_WAIT_MAX_MS", default=20)
# How soon a consumer notices a topic re-created after a broker restart (librdkafka: 5 minutes).
KAFKA_METADATA_REFRESH_MS = env.int("KAFKA_METADATA_REFRESH_MS", default=10000)
# How long a replay's metadata request (an offset range's partition check) waits for a broker
# before the API answers 503 broker_unavailable.
KAFKA_METADATA_TIMEOUT_S = env.float("KAFKA_METADATA_TIMEOUT_S", default=10.0)
# A subscribed consumer without partitions this long says so; twice as long, and if the group looks
# wedged (the embedded broker's departed-leader state) it restarts its processor, which repairs it.
KAFKA_NO_ASSIGNMENT_WARN_S = env.float("KAFKA_NO_ASSIGNMENT_WARN_S", default=15)

# --- Usage consumer ----------------------------------------------------------------------
USAGE_BATCH_MAX_SIZE = env.int("USAGE_BATCH_MAX_SIZE", default=2000)
# The window opens at a batch's first record; the consumer waits, idle, until it closes. Under load
# records pile up while a batch is recorded, so batches fill by size whatever the window; at
# moderate rates the window is dead time in every cycle: at 10,000 events/s offered to two
# consumers, 0.1 s gave batches spanning 250 ms and p99 event→rated 460–560 ms, 0.03 s p99 241 ms.
USAGE_BATCH_MAX_TIME_S = env.float("USAGE_BATCH_MAX_TIME_S", default=0.03)
# The consumer's cyclic GC: young-generation threshold (consumers/management/commands/run_consumer.py).
CONSUMER_GC_GEN0 = env.int("CONSUMER_GC_GEN0", default=50_000)
# Tests only: a dotted path to a wrapper of the usage consumer's record step (fault injection,
# tests/consumers/faults.py). Empty in every real deployment.
CONSUMER_STEP_WRAPPER = env.str("AFORO_CONSUMER_STEP_WRAPPER", default="")
# Consumer health (consumers.health): a consumer whose group has lag while no committed offset
# moves for this long — outside a known outage backoff — logs an error and exits 3 for its
# supervisor to restart; `consumer_status` and /healthz/consumer call such a group stalled.
CONSUMER_STALL_AFTER_S = env.float("CONSUMER_STALL_AFTER_S", default=60)
CONSUMER_STALL_GRACE_S = env.float("CONSUMER_STALL_GRACE_S", default=30)  # then it exits even if stuck in a call
CONSUMER_WATCHDOG_INTERVAL_S = env.float("CONSUMER_WATCHDOG_INTERVAL_S", default=5)
# …or for this long while it commits batches that never show in the group's committed offsets.
CONSUMER_COMMITS_LOST_AFTER_S = env.float("CONSUMER_COMMITS_LOST_AFTER_S", default=10)

# --- Ingestion ---------------------------------------------------------------------------
INGEST_MAX_BATCH = env.int("INGEST_MAX_BATCH", default=1000)
# The entitlement check (billing.entitlements) answers with no database query: tenant tokens and
# catalog generations are remembered per process for these many seconds (a revoked token or a
# catalog change reaches the check within them).
TOKEN_CACHE_TTL_S = env.float("TOKEN_CACHE_TTL_S", default=5.0)
# Webhooks (notify): each attempt's timeout, and retries with backoff for up to a day.
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", default=10.0)
WEBHOOK_RETRY_WINDOW_S = env.int("WEBHOOK_RETRY_WINDOW_S", default=86_400)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=40)
# Webhooks go to public addresses only (notify.hosts: no loopback, private, link-local or
# metadata address); development and tests, whose receivers are on loopback, allow them.
WEBHOOK_ALLOW_PRIVATE_HOSTS = env.bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", default=False)
ENTITLEMENT_GENERATION_TTL_S = env.float("ENTITLEMENT_GENERATION_TTL_S", default=1.0)
INGEST_MAX_BODY_BYTES = env.int("INGEST_MAX_BODY_BYTES", default=2 * 1024 * 1024)
# After the broker acknowledged an event, a resend within this many seconds is answered
# `duplicate / in_flight` without producing it again; later, unless the raw ledger holds the
# event, it is accepted again (an event the broker lost can be re-sent). Longer than the
# consumer's normal delay from acknowledgement to ledger.
INGEST_IN_FLIGHT_WINDOW_S = env.int("INGEST_IN_FLIGHT_WINDOW_S", default=60)
# Every request body is bounded by this (aforo.webserver.RequestBodyGuard: 413 payload_too_large).
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES + 1024
# A larger body is read and discarded up to this size before the 413, so the client can read
# the answer (closing a socket with unread data resets the connection).
REQUEST_BODY_DRAIN_BYTES = env.int("REQUEST_BODY_DRAIN_BYTES", default=64 * 1024 * 1024)

# --- Enrichment cache --------------------------------------------------------------------
ENRICHMENT_CACHE_TTL_S = env.int("ENRICHMENT_CACHE_TTL_S", default=600)
ENRICHMENT_LOCAL_CACHE_MAX = env.int("ENRICHMENT_LOCAL_CACHE_MAX", default=100_000)

# --- Wallets -----------------------------------------------------------------------------
# The hold expiry sweep (wallets.tasks.holds_expire): holds per batch (one short transaction
# per wallet) and batches per run.
WALLET_HOLD_EXPIRY_BATCH_SIZE = env.int("WALLET_HOLD_EXPIRY_BATCH_SIZE", default=500)
WALLET_HOLD_EXPIRY_MAX_BATCHES = env.int("WALLET_HOLD_EXPIRY_MAX_BATCHES", default=20)

# --- Settlement --------------------------------------------------------------------------
# A run settles rated events rated at least this long ago: newer ids may belong to a rating
# transaction still in flight (ids are taken at insert, not at commit). Later ones go to the
# next run, as adjustment lines.
SETTLEMENT_WATERMARK_LAG_S = env.int("SETTLEMENT_WATERMARK_LAG_S", default=60)

# --- Celery ------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/1")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["catalog.auth.TenantTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["catalog.auth.IsTenantAdmin"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "aforo.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "aforo.exceptions.api_exception_handler",
    # DRF's parsers, JSON refusing a body nested too deeply with a 400 (aforo.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "aforo.parsers.JSONParser", "rest_framework.parsers.FormParser", "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Aforo API",
    "DESCRIPTION": "Event-driven usage-based billing: catalog, ingestion, usage.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `kind` (alert rules, leases, invoice lines, wallet entries…): each
    # choice set its own component name.
    "ENUM_NAME_OVERRIDES": {
        "AlertRuleKindEnum": "notify.models.AlertRule.Kind",
        "LeaseKindEnum": "billing.models.leases.Lease.Kind",
        "CreditGrantKindEnum": "wallets.models.CreditGrant.Kind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"arroyo": {"level": "WARNING"}, "django.db.backends": {"level": "INFO"}},
}
