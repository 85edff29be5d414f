"""WSGI entry point: `gunicorn triage_site.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")

application = get_wsgi_application()
