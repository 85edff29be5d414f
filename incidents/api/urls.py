"""/api/v1/… and /api/schema/ (included by triage_site.urls under `api:`).

The API authenticates with tokens, not the sign-in session, so every view here is exempt from
LoginRequiredMiddleware: the views' own authentication and permissions answer 401/403. The docs
page is the exception: it is for people, behind the session sign-in.

Ids are matched as text, not with the uuid converter: a malformed id reaches the view, which
answers the API's JSON 404 instead of the site's HTML one.
"""

from django.contrib.auth.decorators import login_not_required, login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication

from incidents.api import oncall, views
from incidents.api.authentication import BearerTokenAuthentication

app_name = "api"


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema, for a token or a signed-in session (the docs page reads it)."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from local files (no CDN), its script a separate file (CSP: no inline code).

    Signed-in users only (LoginRequiredMiddleware); requests it sends carry a token given in its
    Authorize dialogue, since the API does not take the session.
    """

    authentication_classes = [SessionAuthentication]
    url_name = "api:schema"


urlpatterns = [
    path("v1/incidents/", login_not_required(views.IncidentListView.as_view()), name="incidents"),
    path(
        "v1/incidents/<str:incident_id>/",
        login_not_required(views.IncidentDetailView.as_view()),
        name="incident",
    ),
    *[
        path(
            f"v1/incidents/<str:incident_id>/{action}/",
            login_not_required(view.as_view()),
            name=f"incident-{action}",
        )
        for action, view in (
            ("acknowledge", oncall.AcknowledgeView),
            ("assign", oncall.AssignView),
            ("notes", oncall.NoteView),
            ("close", oncall.CloseView),
            ("reopen", oncall.ReopenView),
        )
    ],
    path("v1/silences/", login_not_required(oncall.SilenceListView.as_view()), name="silences"),
    path(
        "v1/silences/<str:silence_id>/expire/",
        login_not_required(oncall.ExpireSilenceView.as_view()),
        name="silence-expire",
    ),
    path(
        "v1/reports/<str:report_id>/",
        login_not_required(views.ReportDetailView.as_view()),
        name="report",
    ),
    path("v1/faults/", login_not_required(views.FaultIngestView.as_view()), name="faults"),
    path("schema/", login_not_required(SchemaView.as_view()), name="schema"),
    # DRF exempts its views from LoginRequiredMiddleware; people get the sign-in page instead.
    path("docs/", login_required(DocsView.as_view()), name="docs"),
]
