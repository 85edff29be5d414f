"""Who may see what: the read-only "viewer" group.

The dashboard's pages ask for the view permissions below. Members of the viewer group have them
and are not staff, so they see incidents and reports but never the admin. Staff who correct
records get change permissions on top (see `create_demo_user`), superusers everything.
"""

from django.contrib.auth.models import Group, Permission

VIEWER_GROUP = "viewer"
VIEW_INCIDENTS = "incidents.view_incident"
VIEW_REPORTS = "incidents.view_triagereport"
VIEWER_CODENAMES = ("view_faultevent", "view_incident", "view_agentexecution", "view_triagereport")


def viewer_group() -> Group:
    """The viewer group with its permissions, made if missing (migration 0005 makes it too)."""
    group, _ = Group.objects.get_or_create(name=VIEWER_GROUP)
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="incidents", codename__in=VIEWER_CODENAMES
        )
    )
    return group
