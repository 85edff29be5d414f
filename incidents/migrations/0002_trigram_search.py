"""Free-text search (`q`) on resource names, served by a trigram index on PostgreSQL.

Django's `icontains` compiles to `UPPER(col::text) LIKE UPPER(%s)` on PostgreSQL, so the index is
on that expression. SQLite has no trigram indexes and keeps scanning; the operation does nothing
there, which is why this is not a Meta index. The extension is left in place on the way back:
other objects in the database may use it.
"""

from django.db import migrations

INDEXES = {
    "incidents_name_trgm_idx": "incidents USING gin (UPPER(resource_name::text) gin_trgm_ops)",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
