from django.urls import path

from . import views

urlpatterns = [
    path("customers/<int:customer_id>/usage", views.CustomerUsageView.as_view(), name="customer-usage"),
]
