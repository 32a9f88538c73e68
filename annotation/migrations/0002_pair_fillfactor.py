"""Leave room on each pair's page so the per-label counter updates stay HOT (no index writes) on PostgreSQL."""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE annotation_pair SET (fillfactor = 85)")
        schema_editor.execute("ALTER TABLE annotation_assignment SET (fillfactor = 85)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE annotation_pair RESET (fillfactor)")
        schema_editor.execute("ALTER TABLE annotation_assignment RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("annotation", "0001_initial")]
    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
