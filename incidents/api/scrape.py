"""`/metrics`: the Prometheus text format, for scrapers holding TRIAGE_METRICS_TOKEN.

404 when the token is not configured (the endpoint does not exist then), 401 without the right
bearer token. Not behind the sign-in: a scraper has no session.
"""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from incidents import metrics


def _bearer(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


@login_not_required
@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = settings.TRIAGE_METRICS_TOKEN
    if not expected:
        raise Http404("metrics are not enabled")
    if not hmac.compare_digest(_bearer(request).encode(), expected.encode()):
        response = HttpResponse("a valid bearer token is required\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)
