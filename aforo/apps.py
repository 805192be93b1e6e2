from django.apps import AppConfig


class AforoConfig(AppConfig):
    name = "aforo"

    def ready(self) -> None:
        from . import celery  # noqa: F401  (the app every @shared_task enqueues through)
