"""Annotator practice items are "practice", not "training" (model training is another thing): the project setting
practice_items (was training_items) and the assignment kind "practice" (was "training"). Imports record when they
started, like every other kind of background work."""

import django.core.validators
from django.db import migrations, models


def kind_forwards(apps, schema_editor):
    apps.get_model("annotation", "Assignment").objects.filter(kind="training").update(kind="practice")


def kind_backwards(apps, schema_editor):
    apps.get_model("annotation", "Assignment").objects.filter(kind="practice").update(kind="training")


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_response_lengths"),
    ]

    operations = [
        migrations.RenameField(model_name="project", old_name="training_items", new_name="practice_items"),
        migrations.AlterField(
            model_name="project",
            name="practice_items",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Practice: each annotator's first N pairs are calibration pairs, announced as practice and "
                "answered with feedback (0 turns it off).",
                validators=[django.core.validators.MaxValueValidator(100)],
            ),
        ),
        migrations.RemoveConstraint(model_name="assignment", name="assignment_once_per_annotator"),
        migrations.AlterField(
            model_name="assignment",
            name="kind",
            field=models.CharField(
                choices=[
                    ("regular", "Regular"),
                    ("gold", "Calibration (gold)"),
                    ("practice", "Practice (with feedback)"),
                    ("repeat", "Mirrored repeat"),
                ],
                default="regular",
                max_length=10,
            ),
        ),
        migrations.RunPython(kind_forwards, kind_backwards),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind__in", ["regular", "gold", "practice"])),
                fields=("pair", "annotator"),
                name="assignment_once_per_annotator",
            ),
        ),
        migrations.AddField(
            model_name="importbatch",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
