from django.urls import path

from . import pricing, views

urlpatterns = [
    path("customers/<int:customer_id>/usage", views.CustomerUsageView.as_view(), name="customer-usage"),
    path("pricing/quote", pricing.PricingQuoteView.as_view(), name="pricing-quote"),
]
