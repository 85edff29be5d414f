"""The dashboard's permission rules for the API (`incidents.roles`): a token carries its user's
permissions, so a viewer's token reads and cannot ingest."""

from rest_framework.permissions import BasePermission

from incidents.roles import RESPOND, VIEW_INCIDENTS, VIEW_REPORTS, VIEW_SILENCES

INGEST_FAULTS = "incidents.add_faultevent"


class _Requires(BasePermission):
    perm = ""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.perm))


class CanViewIncidents(_Requires):
    perm = VIEW_INCIDENTS


class CanViewReports(_Requires):
    perm = VIEW_REPORTS


class CanIngestFaults(_Requires):
    """Posting faults writes fault events and incidents: "Can add fault event"."""

    perm = INGEST_FAULTS


class CanRespond(_Requires):
    """The on-call actions and silences: the responder group's permission."""

    perm = RESPOND


class CanViewSilences(_Requires):
    perm = VIEW_SILENCES
