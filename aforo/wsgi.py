import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings.dev")
from django.conf import settings  # noqa: E402

from aforo.webserver import RequestBodyGuard  # noqa: E402

django_application = get_wsgi_application()
from billing.api.entitlements_wsgi import EntitlementCheckFastPath  # noqa: E402  (needs the apps loaded)

# The body guard first (every body bounded and read whole), then the entitlement check's fast
# path (gateways ask it on their request path: it skips Django's middleware and DRF), then Django.
application = RequestBodyGuard(
    EntitlementCheckFastPath(django_application),
    max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE, drain_bytes=settings.REQUEST_BODY_DRAIN_BYTES,
)

# Create this worker's Kafka producer now: an idempotent producer spends ~0.5 s getting its
# producer id, which would otherwise delay the first ingest requests. It connects in the
# background; a broker that is down only matters when a request produces.
from aforo.kafka import producer  # noqa: E402

producer()
