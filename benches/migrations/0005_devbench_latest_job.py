"""DevBench.latest_job: the newest job of each bench, set when a job is created (instead of a
subquery on every list), filled here for the benches that exist."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill_latest_job(apps, schema_editor):
    DevBench = apps.get_model("benches", "DevBench")
    Job = apps.get_model("benches", "Job")
    newest = Job.objects.filter(bench=OuterRef("pk")).order_by("-created_at", "-id").values("pk")[:1]
    DevBench.objects.update(latest_job=Subquery(newest))


class Migration(migrations.Migration):

    dependencies = [
        ("benches", "0004_devbench_name_unique_ci"),
    ]

    operations = [
        migrations.AddField(
            model_name="devbench",
            name="latest_job",
            field=models.ForeignKey(
                blank=True, editable=False, help_text="The bench's newest job, set when a job is created.",
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="benches.job",
            ),
        ),
        migrations.RunPython(fill_latest_job, migrations.RunPython.noop),
    ]
