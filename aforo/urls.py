from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from aforo.health import healthz


api_v1 = [
    path("", include("metering.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("catalog.api.urls")),
    path("", include("wallets.api.urls")),
    path("", include("notify.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("dashboard/", include("billing.dashboard_urls")),
    path("healthz", healthz, name="healthz"),
    path("healthz/", include("consumers.urls")),  # /healthz/consumer
    path("", RedirectView.as_view(pattern_name="dashboard-usage", permanent=False)),
]
