"""The list as a live page: auto-refresh (remembered per user), "N new since you looked", and
the count of what needs a human for the tab's title.

Both remembered values live in the user's session, which is server-side (Django's database
sessions) and per sign-in: no model, no migration. A reload made by the page's own auto-refresh
is not a look (app.js marks it with a short-lived cookie), so rows that arrive while the tab
refreshes itself at 3 a.m. stay marked new until someone loads the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from incidents import selectors
from incidents.choices import NEEDS_A_HUMAN
from incidents.models import Incident

# ?refresh= value -> seconds (0: off). "1" is the older on-switch, kept for bookmarked links.
REFRESH_CHOICES = {"15": 15, "30": 30, "60": 60, "off": 0, "1": 30}
REFRESH_LABELS = (("15", "15 s"), ("30", "30 s"), ("60", "1 min"), ("off", "off"))
DEFAULT_REFRESH_SECONDS = 30
REFRESH_KEY = "incidents.refresh_seconds"
SEEN_KEY = "incidents.list_seen_at"
SEEN_RESOLUTION_SECONDS = 60
# Set by app.js just before an automatic reload; lives seconds, read once.
AUTO_RELOAD_COOKIE = "triage_autoreload"
# The title's count is exact up to here, then "99+": bounded work on every refresh.
TITLE_COUNT_CAP = 99
TITLE_COUNT_CACHE_KEY = "incidents.needs_a_human"
TITLE_COUNT_CACHE_SECONDS = 10


def refresh_seconds(request: HttpRequest) -> int:
    """The list's auto-refresh period: `?refresh=` when given (and remembered), else the
    remembered choice, else DEFAULT_REFRESH_SECONDS. An unknown value changes nothing."""
    chosen = REFRESH_CHOICES.get(request.GET.get("refresh", ""))
    if chosen is not None:
        request.session[REFRESH_KEY] = chosen
        return chosen
    remembered = request.session.get(REFRESH_KEY)
    if isinstance(remembered, int) and remembered in REFRESH_CHOICES.values():
        return remembered
    return DEFAULT_REFRESH_SECONDS


@dataclass(frozen=True)
class Seen:
    at: datetime | None  # when this user last looked at the list (None: never)
    new: int  # rows of the page shown created since then
    more: bool  # the page is full of new rows: there may be more on the next


def last_look(request: HttpRequest) -> datetime | None:
    """When the user last looked at the list; the look is then moved to now, unless this load
    is the page's own auto-refresh."""
    stored = request.session.get(SEEN_KEY)
    at = datetime.fromisoformat(stored) if isinstance(stored, str) else None
    now = timezone.now()
    # To the minute: a session write (a query) at most once a minute per user, not per page.
    if not request.COOKIES.get(AUTO_RELOAD_COOKIE) and (
        at is None or now - at >= timedelta(seconds=SEEN_RESOLUTION_SECONDS)
    ):
        request.session[SEEN_KEY] = now.isoformat()
    return at


def seen(at: datetime | None, page: selectors.Page, *, newest_first: bool) -> Seen:
    """How many of the page's rows arrived since `at`. Counted on the page itself (no query):
    on the first page newest first, the new rows are the top ones, and a page that is new to
    its last row says "50+"; in another order only the rows are marked, not counted."""
    if at is None or not (newest_first and page.is_first):
        return Seen(at=at, new=0, more=False)
    new = sum(1 for row in page.rows if row.created_at > at)
    return Seen(at=at, new=new, more=new == len(page.rows) and not page.is_last)


def forget_auto_reload(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(AUTO_RELOAD_COOKIE, samesite="Strict")
    return response


def needs_a_human() -> selectors.CappedCount:
    """Open or acknowledged incidents, counted up to TITLE_COUNT_CAP (index: oncall, created),
    cached for TITLE_COUNT_CACHE_SECONDS: one bounded query per few refreshes of every tab."""
    found = cache.get(TITLE_COUNT_CACHE_KEY)
    if isinstance(found, selectors.CappedCount):
        return found
    queryset = Incident.objects.filter(oncall_state__in=list(NEEDS_A_HUMAN))
    found = selectors.capped_count(queryset, TITLE_COUNT_CAP)
    cache.set(TITLE_COUNT_CACHE_KEY, found, TITLE_COUNT_CACHE_SECONDS)
    return found
