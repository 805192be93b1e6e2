from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "notify"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"
