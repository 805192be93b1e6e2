"""Test settings: the same real services, on their own Redis databases and key prefix so a
running dev platform on this machine is never touched."""

from .base import *  # noqa: F401,F403
from .base import CACHES, DATABASES, env

DEBUG = env.bool("TEST_DEBUG", default=False)  # a test may run a web server with DEBUG on (error pages)
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# pytest-xdist (scripts/test runs the suite on both cores): worker gwN gets its own Redis
# databases, two below the previous worker's (gw0 14/15, gw1 12/13; an explicit TEST_REDIS_URL
# or TEST_CELERY_BROKER_URL is used as it is), and key prefix; its
# PostgreSQL test database is suffixed _gwN by pytest-django, its embedded broker is its own
# (tests/conftest.py). A live server a test starts inherits PYTEST_XDIST_WORKER: the same ones.
_WORKER = env.str("PYTEST_XDIST_WORKER", default="")
_SHIFT = 2 * int(_WORKER[2:]) if _WORKER.startswith("gw") and _WORKER[2:].isdigit() else 0


CACHES["default"]["LOCATION"] = env.str("TEST_REDIS_URL", default=f"redis://127.0.0.1:6379/{14 - _SHIFT}")
CACHES["default"]["KEY_PREFIX"] = f"aforo-test{_WORKER and '-' + _WORKER}"
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default=f"redis://127.0.0.1:6379/{15 - _SHIFT}")
# Tasks run in the caller (eager), except in a live web server that must not (TEST_CELERY_EAGER=0:
# the API fuzzer's webhook endpoints have made-up URLs, and delivering to them inside a request
# would hold it for the delivery's timeout).
CELERY_TASK_ALWAYS_EAGER = env.bool("TEST_CELERY_EAGER", default=True)
# The embedded test broker is started by tests/conftest.py on a free port.
KAFKA_PRODUCE_TIMEOUT_MS = 3000
USAGE_BATCH_MAX_TIME_S = 0.05
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Lets parallel test runs on one machine use separate databases.
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_aforo")}
# Nothing rates concurrently with a test's settlement: settle everything rated so far.
SETTLEMENT_WATERMARK_LAG_S = 0

# The tests' webhook receivers listen on loopback (tests/notify checks the refusal with it off).
WEBHOOK_ALLOW_PRIVATE_HOSTS = True
