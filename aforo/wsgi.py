import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings.dev")
application = get_wsgi_application()

# Create this worker's Kafka producer now: an idempotent producer spends ~0.5 s getting its
# producer id, which would otherwise delay the first ingest requests. It connects in the
# background; a broker that is down only matters when a request produces.
from consumers.kafka import producer  # noqa: E402

producer()
