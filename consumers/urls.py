from django.urls import path

from .views import consumer_health

urlpatterns = [path("consumer", consumer_health, name="healthz-consumer")]
