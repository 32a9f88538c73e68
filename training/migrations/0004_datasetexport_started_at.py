from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0003_training_jobs"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetexport",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
