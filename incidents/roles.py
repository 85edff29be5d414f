"""Who may see and do what: the read-only "viewer" group and the "responder" group.

The dashboard's pages ask for the view permissions below. Members of the viewer group have them
and are not staff, so they see incidents and reports but never the admin. Staff who correct
records get change permissions on top (see `create_demo_user`), superusers everything.
"""

from django.contrib.auth.models import Group, Permission

VIEWER_GROUP = "viewer"
VIEW_INCIDENTS = "incidents.view_incident"
VIEW_REPORTS = "incidents.view_triagereport"
VIEWER_CODENAMES = (
    "view_faultevent",
    "view_incident",
    "view_agentexecution",
    "view_triagereport",
    "view_silence",
)


def viewer_group() -> Group:
    """The viewer group with its permissions, made if missing (migration 0005 makes it too)."""
    group, _ = Group.objects.get_or_create(name=VIEWER_GROUP)
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="incidents", codename__in=VIEWER_CODENAMES
        )
    )
    return group


RESPONDER_GROUP = "responder"
# Acknowledge, assign, note, close, reopen and silence (the on-call loop); a Meta permission of
# Incident, given to the responder group by migration 0006 with the viewer's view permissions.
RESPOND = "incidents.respond_incident"
VIEW_SILENCES = "incidents.view_silence"
RESPONDER_CODENAMES = (*VIEWER_CODENAMES, "respond_incident", "view_silence")


def responder_group() -> Group:
    """The responder group with its permissions, made if missing (migration 0006 makes it too)."""
    group, _ = Group.objects.get_or_create(name=RESPONDER_GROUP)
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="incidents", codename__in=RESPONDER_CODENAMES
        )
    )
    return group


def responders():
    """Users who may be assigned incidents: members of the responder group, active, by name."""
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name=RESPONDER_GROUP)
        .order_by("username")
    )
