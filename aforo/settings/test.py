"""Test settings: the same real services, on their own Redis databases and key prefix so a
running dev platform on this machine is never touched."""

from .base import *  # noqa: F401,F403
from .base import CACHES, DATABASES, env

DEBUG = env.bool("TEST_DEBUG", default=False)  # a test may run a web server with DEBUG on (error pages)
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES["default"]["LOCATION"] = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/14")
CACHES["default"]["KEY_PREFIX"] = "aforo-test"
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
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
