"""Calibration (gold) pairs: imported with their expected answer, mixed in unannounced, scored per annotator."""

import json
import re

import pytest
from django.urls import reverse

from annotation.models import Assignment, Pair
from annotation.selectors import project_agreement, project_gold
from annotation.services.assignment import assignment_next
from annotation.services.imports import ImportRejected, pairs_import
from annotation.services.labels import Submission, label_submit
from annotation.services.projects import project_update
from tests.factories import UserFactory, make_pairs, member

pytestmark = pytest.mark.django_db


def write_jsonl(tmp_path, rows, name="gold.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gold_rows(n, answer="A"):
    return [{"prompt": f"Check question {i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "gold": answer}
            for i in range(n)]  # fmt: skip


def test_import_keeps_gold_out_of_the_k_pool(project, tmp_path):
    pairs_import(project=project, path=write_jsonl(tmp_path, [*gold_rows(2, "a"), {"prompt": "p", "response_a": "x",
                 "response_b": "y"}]), fmt="pairs")  # fmt: skip
    gold = Pair.objects.filter(project=project).exclude(gold="")
    assert sorted(gold.values_list("gold", "open_slots")) == [("A", 0), ("A", 0)]
    assert Pair.objects.get(project=project, gold="").open_slots == project.overlap_k


def test_bad_gold_value_is_an_error_with_line_and_field(project, tmp_path):
    rows = [*gold_rows(1), {"prompt": "p", "response_a": "x", "response_b": "y", "gold": "C"}]
    with pytest.raises(ImportRejected) as exc:
        pairs_import(project=project, path=write_jsonl(tmp_path, rows), fmt="pairs")
    [error] = exc.value.batch.errors
    assert error["line"] == 2 and error["field"] == "gold"
    assert not Pair.objects.exists()


def test_gold_is_mixed_in_at_the_calibration_rate_once_per_annotator(project, annotator, tmp_path):
    pairs_import(project=project, path=write_jsonl(tmp_path, gold_rows(2)), fmt="pairs")
    make_pairs(project, 3)
    project_update(project=project, calibration_rate=0.5)
    project.refresh_from_db()
    kinds = []
    while (a := assignment_next(project=project, annotator=annotator)) is not None:
        kinds.append(a.kind)
        label_submit(assignment=a, submission=Submission(choice="left"))
    assert kinds.count("regular") == 3 and kinds.count("gold") <= 2
    # gold answers never count toward K and never take a slot
    assert set(Pair.objects.exclude(gold="").values_list("open_slots", flat=True)) == {0}


def test_rate_zero_serves_no_gold_and_rate_one_serves_gold_first(project, annotator, lead, tmp_path):
    pairs_import(project=project, path=write_jsonl(tmp_path, gold_rows(1)), fmt="pairs")
    make_pairs(project, 1)
    project_update(project=project, calibration_rate=0.0)
    project.refresh_from_db()
    assert assignment_next(project=project, annotator=lead).kind == "regular"
    project_update(project=project, calibration_rate=0.5)
    project.refresh_from_db()
    project.calibration_rate = 1.0  # above the form's cap: every new assignment tries gold first
    first = assignment_next(project=project, annotator=annotator)
    assert first.kind == Assignment.Kind.GOLD and first.pair.gold == "A"


def _strip(html: str, texts: list[str]) -> str:
    html = re.sub(r'data-assignment="[0-9a-f-]+"', 'data-assignment=""', html)
    for t in texts:
        html = html.replace(t, "TEXT")
    return html


def test_gold_items_are_indistinguishable_in_the_annotators_html(project, annotator, tmp_path):
    from tests.conftest import login

    pairs_import(project=project, path=write_jsonl(tmp_path, gold_rows(1)), fmt="pairs")
    [regular] = make_pairs(project, 1)
    Pair.objects.filter(pk=regular.pk).update(prompt=[{"role": "user", "content": "Question R?"}],
                                              response_a="good R", response_b="bad R")  # fmt: skip
    project_update(project=project, calibration_rate=0.5)
    project.refresh_from_db()
    project.calibration_rate = 1.0
    gold = assignment_next(project=project, annotator=annotator)
    regular_a = assignment_next(project=project, annotator=annotator, exclude=[gold.public_id])
    assert (gold.kind, regular_a.kind) == ("gold", "regular")
    Assignment.objects.filter(pk__in=[gold.pk, regular_a.pk]).update(left_is_a=True)
    client = login(annotator)
    client.get("/")
    token = client.cookies["csrftoken"].value
    url = reverse("annotation:annotate_next", args=[project.slug])
    gold_html = client.post(url, {"exclude": str(regular_a.public_id)}, HTTP_X_CSRFTOKEN=token).content.decode()
    regular_html = client.post(url, {"exclude": str(gold.public_id)}, HTTP_X_CSRFTOKEN=token).content.decode()
    assert "gold" not in gold_html.lower()
    assert _strip(gold_html, ["Check question 0?", "good 0", "bad 0"]) == _strip(
        regular_html, ["Question R?", "good R", "bad R"]
    )


def test_gold_accuracy_and_separate_reporting(project, tmp_path):
    pairs_import(project=project, path=write_jsonl(tmp_path, gold_rows(4, "A")), fmt="pairs")
    make_pairs(project, 2)
    project.calibration_rate = 1.0
    careful, careless = UserFactory(username="careful"), UserFactory(username="careless")
    for user in (careful, careless):
        member(project, user)
        for _ in range(4):
            a = assignment_next(project=project, annotator=user)
            assert a.kind == "gold"
            a_side = "left" if a.left_is_a else "right"
            b_side = "right" if a.left_is_a else "left"
            label_submit(assignment=a, submission=Submission(choice=a_side if user is careful else b_side))
    gold = project_gold(project)
    assert gold["careful"]["gold_accuracy"] == 1.0 and gold["careless"]["gold_accuracy"] == 0.0
    assert gold["careful"]["gold_answers"] == 4 and gold["careless"]["rolling_gold_accuracy"] == 0.0
    assert gold["careful"]["rolling_series"] == [1.0] * 4 and gold["careless"]["rolling_series"] == [0.0] * 4
    # gold answers are not part of the agreement figures
    assert project_agreement(project, n_boot=10)["labels"] == 0
