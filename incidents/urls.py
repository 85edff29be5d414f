"""The dashboard's routes (names fixed by the contract). Ids are UUIDs: anything else is a 404."""

from django.urls import path

from incidents import rerun_views, views

app_name = "incidents"

urlpatterns = [
    path("", views.IncidentListView.as_view(), name="list"),
    # The filtered list as CSV: the same query string as the list.
    path("incidents.csv", views.IncidentExportView.as_view(), name="export"),
    path("incidents/<uuid:incident_id>/", views.IncidentDetailView.as_view(), name="detail"),
    path(
        "incidents/<uuid:incident_id>/rerun/",
        rerun_views.IncidentRerunView.as_view(),
        name="rerun",
    ),
    path("reports/<uuid:report_id>/", views.ReportDetailView.as_view(), name="report"),
    path("reports/<uuid:report_id>/raw/", views.ReportRawView.as_view(), name="report-raw"),
]
