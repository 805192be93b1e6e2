from django.urls import path

from . import views

urlpatterns = [
    path("webhook-endpoints", views.EndpointListView.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", views.EndpointDetailView.as_view(), name="webhook-endpoint"),
    path("webhook-endpoints/<int:endpoint_id>/rotate-secret", views.EndpointRotateView.as_view(), name="webhook-endpoint-rotate"),
    path("webhook-deliveries", views.DeliveryListView.as_view(), name="webhook-deliveries"),
    path("webhook-deliveries/<int:delivery_id>/resend", views.DeliveryResendView.as_view(), name="webhook-delivery-resend"),
]
