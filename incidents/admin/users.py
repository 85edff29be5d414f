"""User admin for staff who let teammates in, without handing out more than they hold.

The demo user (and any staff user given the auth user permissions) adds a teammate here and
puts them in the viewer group. Django's own user admin would also let them tick "superuser"
or "staff" on anyone, themselves included; here only a superuser sees those fields or the
per-user permissions, and the accounts of other staff and superusers are read-only to others.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

User = get_user_model()
TEAM_FIELDSETS = (
    (None, {"fields": ("username", "password")}),
    ("Personal info", {"fields": ("first_name", "last_name", "email")}),
    ("Access (the viewer group sees the dashboard)", {"fields": ("is_active", "groups")}),
    ("Important dates", {"fields": ("last_login", "date_joined")}),
)

if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class TeamUserAdmin(UserAdmin):
    def get_fieldsets(self, request: HttpRequest, obj=None):
        if obj is None or request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return TEAM_FIELDSETS

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return ("last_login", "date_joined")

    def _may_manage(self, request: HttpRequest, obj) -> bool:
        """A non-superuser manages non-staff accounts and their own, nobody else's."""
        return (
            obj is None
            or request.user.is_superuser
            or obj.pk == request.user.pk
            or not (obj.is_staff or obj.is_superuser)
        )

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request, obj) and super().has_delete_permission(request, obj)
