"""The read-only "viewer" group: members see the dashboard, incidents and reports, nothing more.

Viewers are not staff, so the admin stays closed to them; the dashboard asks for the view
permissions this group carries.
"""

from django.db import migrations

VIEWER_GROUP = "viewer"
VIEW_CODENAMES = ["view_faultevent", "view_incident", "view_agentexecution", "view_triagereport"]


def create_viewer_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after migrate; this group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=VIEWER_GROUP)
    group.permissions.add(
        *permission_model.objects.filter(
            content_type__app_label="incidents", codename__in=VIEW_CODENAMES
        )
    )


def delete_viewer_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=VIEWER_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0004_admin_list_indexes"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_viewer_group, delete_viewer_group)]
