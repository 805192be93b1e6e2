from django.urls import path

from . import alerts, views

urlpatterns = [
    path("webhook-endpoints", views.EndpointListView.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", views.EndpointDetailView.as_view(), name="webhook-endpoint"),
    path("webhook-endpoints/<int:endpoint_id>/rotate-secret", views.EndpointRotateView.as_view(), name="webhook-endpoint-rotate"),
    path("webhook-deliveries", views.DeliveryListView.as_view(), name="webhook-deliveries"),
    path("webhook-deliveries/<int:delivery_id>/resend", views.DeliveryResendView.as_view(), name="webhook-delivery-resend"),
    path("alert-rules", alerts.AlertRuleListView.as_view(), name="alert-rules"),
    path("alert-rules/<int:rule_id>", alerts.AlertRuleDetailView.as_view(), name="alert-rule"),
    path("alerts", alerts.AlertFiringListView.as_view(), name="alerts"),
]
