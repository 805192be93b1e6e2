from django.urls import path

from . import reconciliation, views

urlpatterns = [
    path("events", views.EventIngestView.as_view(), name="events-ingest"),
    path("events/<int:raw_event_id>", views.RawEventDetailView.as_view(), name="event-detail"),
    path("schemas/usage-event-v1.json", views.UsageEventSchemaView.as_view(), name="usage-event-schema"),
    path("reconciliation", reconciliation.ReconciliationView.as_view(), name="reconciliation"),
    path("unmatched-usage", views.UnmatchedUsageListView.as_view(), name="unmatched-usage-list"),
]
