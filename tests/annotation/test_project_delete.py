"""Deleting a project removes every row and file it owns, set-based: a project of 70,000 pairs (past PostgreSQL's
65,535 bound-parameter limit, which Django's cascade collector hits) goes in one transaction, and nothing of
another project is touched."""

import pytest
from django.db import OperationalError, connection, transaction

from annotation.models import Assignment, Label, Pair, Project
from annotation.services.assignment import assignment_next
from annotation.services.project_delete import project_delete
from judging.models import JudgeConfig, JudgeRun
from judging.services import judge_create
from tests.factories import ProjectFactory, UserFactory, make_pairs
from tests.training.conftest import labelled_export
from training.models import DatasetExport, TrainingJob, TrainingMetric
from training.services.jobs import job_create

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_a_large_project_and_everything_in_it_is_deleted(
    project, lead, annotator, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.EXPORT_ROOT, settings.TRAINING_ROOT = tmp_path / "exports", tmp_path / "training"
    admin = UserFactory(is_staff=True)
    export = labelled_export(project, lead, "dpo")
    assignment_next(project=project, annotator=annotator)
    judge = judge_create(project=project, user=lead, name="j", base_url="http://127.0.0.1:9/v1", model="m")
    shared = judge_create(project=None, user=admin, name="shared", base_url="http://127.0.0.1:9/v1", model="m")
    JudgeRun.objects.create(project=project, judge=judge, prompt_version=judge.prompt_versions.first(), pair_ids=[])
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    job = job_create(export=export, user=admin, settings_={"base_model": str(model)})
    TrainingMetric.objects.create(job=job, step=1, values={"loss": 1.0})
    (tmp_path / "training" / str(job.public_id)).mkdir(parents=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO annotation_pair (project_id, external_id, prompt, prompt_is_chat, response_a, response_b,
                   model_a, model_b, metadata, source_preference, gold, gold_explanation, content_hash, shuffle_key,
                   open_slots, label_count, created_at)
               SELECT %s, 'bulk' || g, '[]'::jsonb, false, 'a', 'b', '', '', '{}', '', '', '', md5('bulk' || g), g,
                      3, 0, now() FROM generate_series(1, 70000) g""",
            [project.pk],
        )
    other = ProjectFactory(slug="other")
    make_pairs(other, 3)
    export_folder = settings.EXPORT_ROOT / project.slug
    assert export_folder.exists()

    with pytest.raises(OperationalError, match="65535"), transaction.atomic():
        Pair.objects.filter(project=project).delete()  # what this replaces: the cascade's IN list is too long
    with django_capture_on_commit_callbacks(execute=True):
        counts = project_delete(project=project)

    assert counts["annotation.Pair"] == 70_012 and counts["annotation.Project"] == 1
    assert not Project.objects.filter(pk=project.pk).exists()
    for model in (Pair, Label, Assignment, DatasetExport, TrainingJob, TrainingMetric, JudgeRun):
        assert not model.objects.filter(**({"job__project_id": project.pk} if model is TrainingMetric
                                           else {"project_id": project.pk})).exists(), model  # fmt: skip
    assert not JudgeConfig.objects.filter(pk=judge.pk).exists() and JudgeConfig.objects.filter(pk=shared.pk).exists()
    assert Pair.objects.filter(project=other).count() == 3
    assert not export_folder.exists() and not (tmp_path / "training" / str(job.public_id)).exists()
