from django.urls import path

from . import views

urlpatterns = [
    path("events", views.EventIngestView.as_view(), name="events-ingest"),
    path("events/<int:raw_event_id>", views.RawEventDetailView.as_view(), name="event-detail"),
    path("unmatched-usage", views.UnmatchedUsageListView.as_view(), name="unmatched-usage-list"),
]
