from django.urls import path

from . import views

urlpatterns = [
    path("", views.usage_page, name="dashboard-usage"),
    path("usage.json", views.usage_json, name="dashboard-usage-json"),
]
