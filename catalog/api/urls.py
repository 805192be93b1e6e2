"""Catalog management routes under /api/v1/ (no trailing slash, like the rest of the API).

Billing owns `customers/<id>/usage` (included before this module); nothing here routes it."""

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=False)
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("teams", views.TeamViewSet, basename="team")
router.register("apps", views.AppViewSet, basename="app")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("products", views.ProductViewSet, basename="product")
router.register("metrics", views.MetricViewSet, basename="metric")
router.register("offerings", views.OfferingViewSet, basename="offering")
router.register("rate-plans", views.RatePlanViewSet, basename="rate-plan")
router.register("rate-plan-versions", views.RatePlanVersionViewSet, basename="rate-plan-version")
router.register("metric-configs", views.MetricConfigViewSet, basename="metric-config")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")

urlpatterns = router.urls
