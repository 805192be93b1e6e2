"""Aforo's project package and shared kernel (money, Kafka client, bulk SQL, API helpers).

Importing it loads nothing: the pure parts (aforo.money) are imported by the rating engine,
which must not pull in Django. The Celery app is loaded when Django starts (AforoConfig.ready),
so `@shared_task` enqueues through it; `celery -A aforo` finds it as aforo.celery."""
