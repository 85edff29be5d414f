"""The test database as a subprocess sees it."""

from django.db import connection


def database_url() -> str:
    """The test database as a DATABASE_URL, for a subprocess (a worker, a command) to open.

    SQLite's test database is a file (see `django_db_modify_db_settings` in conftest.py), so a
    subprocess shares it as it shares PostgreSQL's.
    """
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
