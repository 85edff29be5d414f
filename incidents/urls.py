"""The dashboard's routes (names fixed by the contract). Ids are UUIDs: anything else is a 404."""

from django.urls import path

from incidents import oncall_views, rerun_views, saved_views, views
from incidents.quality import views as quality_views

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
    # On-call actions (POST): on the selected rows of the list, and on one incident.
    path("incidents/actions/", oncall_views.BulkActionView.as_view(), name="bulk-action"),
    path(
        "incidents/<uuid:incident_id>/<slug:action>/",
        oncall_views.IncidentActionView.as_view(),
        name="action",
    ),
    path("silences/", oncall_views.SilenceListView.as_view(), name="silences"),
    path(
        "silences/<int:silence_id>/expire/",
        oncall_views.ExpireSilenceView.as_view(),
        name="silence-expire",
    ),
    # Saved list views: the user's list; save the current list under a name, delete one (POST).
    path("views/", saved_views.SavedViewListView.as_view(), name="saved-views"),
    path("views/new/", saved_views.SavedViewCreateView.as_view(), name="saved-view-create"),
    path(
        "views/<int:view_id>/delete/",
        saved_views.SavedViewDeleteView.as_view(),
        name="saved-view-delete",
    ),
    # An agent run's whole log (stdout or stderr), as text; never a path from the request.
    path(
        "executions/<uuid:execution_id>/logs/<str:stream>/",
        views.ExecutionLogView.as_view(),
        name="execution-log",
    ),
    path("reports/<uuid:report_id>/", views.ReportDetailView.as_view(), name="report"),
    path("reports/<uuid:report_id>/raw/", views.ReportRawView.as_view(), name="report-raw"),
    path(
        "reports/<uuid:report_id>/verdict/",
        quality_views.VerdictView.as_view(),
        name="report-verdict",
    ),
    path("quality/", quality_views.ScoreboardView.as_view(), name="quality"),
]
