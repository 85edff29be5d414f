"""Django admin for correcting incident records; every state change goes through the store.

Importing this package registers the four models (Django's admin autodiscovery does it).
"""

from django.contrib import admin

import incidents.admin.notifications  # noqa: F401 - registers
from incidents.admin import execution, fault_event, incident, report, users  # noqa: F401 - registers
from incidents.api import admin as api_admin  # noqa: F401 - registers ApiToken

admin.site.site_header = "Incident triage admin"
admin.site.site_title = "Incident triage admin"
admin.site.index_title = "Corrections"
admin.site.site_url = "/"
