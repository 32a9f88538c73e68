"""Calibration (gold) pairs: imported with their expected answer, mixed in unannounced, scored per annotator."""

import json
import re
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotation.imports.importer import ImportRejected, pairs_import
from annotation.models import ROLLING_GOLD_WINDOW, Assignment, Label, Pair
from annotation.selectors import project_agreement, project_gold, project_quality
from annotation.services.assignment import assignment_next
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


def _answer(project, pair, user, choice, *, kind=Assignment.Kind.REGULAR, left_is_a=True, ms=8000):
    now = timezone.now()
    assignment = Assignment.objects.create(
        project=project, pair=pair, annotator=user, kind=kind, state="done", left_is_a=left_is_a, served_at=now,
        expires_at=now, finished_at=now,
    )  # fmt: skip
    return Label.objects.create(
        project=project, pair=pair, assignment=assignment, annotator=user, choice=choice, left_is_a=left_is_a,
        time_on_item_ms=ms,
    )  # fmt: skip


def test_each_part_of_the_report_counts_its_own_labels(project, annotator, lead, django_assert_num_queries):
    """Agreement: regular and imported labels on normal pairs. Audits: those plus calibration answers. Calibration
    accuracy and gold_agreement: calibration answers on calibration pairs. Practice answers and mirrored repeats:
    nowhere."""
    normal = make_pairs(project, 3)
    gold = make_pairs(project, 2)
    Pair.objects.filter(pk__in=[p.pk for p in gold]).update(gold="A", open_slots=0)
    for pair, (x, y) in zip(normal, [("A", "A"), ("B", "A"), ("tie", "tie")], strict=True):
        _answer(project, pair, annotator, x)
        _answer(project, pair, lead, y)
    _answer(project, normal[0], annotator, "B", kind=Assignment.Kind.REPEAT, left_is_a=False)  # not in any figure
    Label.objects.create(project=project, pair=normal[1], source="external", external_annotator="x", choice="B")
    _answer(project, gold[0], annotator, "A", kind=Assignment.Kind.GOLD)
    _answer(project, gold[0], lead, "B", kind=Assignment.Kind.GOLD)
    _answer(project, gold[1], annotator, "A", kind=Assignment.Kind.GOLD)
    _answer(project, gold[1], lead, "A", kind=Assignment.Kind.GOLD)
    _answer(project, gold[0], UserFactory(username="trainee"), "B", kind=Assignment.Kind.PRACTICE)  # nowhere

    # labels, usernames, paused members, self-consistency (SQLite: one more to load the labels)
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 5):
        report = project_quality(project, n_boot=20)
    assert report["labels"] == 7 and report["items_with_two_or_more_labels"] == 3
    [kappa] = [p for p in report["pairwise_cohen_kappa"] if p["annotator_a"] == "annotator"]
    assert kappa["annotator_b"] == "lead" and kappa["shared_items"] == 3  # the repeat did not replace "A"
    assert report["percent_agreement"]["value"] == pytest.approx((1 + (1 / 3) + 1) / 3)
    assert set(report["per_annotator"]) == {"annotator", "lead", "imported:x"}  # not the trainee
    assert report["per_annotator"]["annotator"]["labels"] == 5  # 3 regular + 2 calibration; the repeat is left out
    assert report["per_annotator"]["lead"]["gold_answers"] == 2
    assert report["per_annotator"]["lead"]["gold_accuracy"] == 0.5
    assert report["per_annotator"]["imported:x"]["gold_answers"] == 0
    gold_report = report["gold_agreement"]
    assert gold_report["labels"] == 4 and gold_report["accuracy"] == 0.75
    assert gold_report["items_with_two_or_more_labels"] == 2
    assert gold_report["pairwise_cohen_kappa"][0]["shared_items"] == 2
    assert gold_report["percent_agreement"]["value"] == 0.5
    json.dumps(report)  # the API and the command serialize it as it is


def test_rolling_series_follows_answer_time_and_keeps_the_last_points(project, annotator):
    pairs = make_pairs(project, 130)
    Pair.objects.filter(pk__in=[p.pk for p in pairs]).update(gold="A", open_slots=0)
    # Right on the first 65 answers in time, wrong after; written in another order than they were given.
    order = np.random.default_rng(0).permutation(130)
    start = timezone.now() - timedelta(days=1)
    for t in order:
        label = _answer(project, pairs[t], annotator, "A" if t < 65 else "B", kind=Assignment.Kind.GOLD)
        Label.objects.filter(pk=label.pk).update(created_at=start + timedelta(minutes=int(t)))
    hits = [t < 65 for t in range(130)]
    windows = [hits[max(0, i + 1 - ROLLING_GOLD_WINDOW) : i + 1] for i in range(130)]
    expected = [sum(w) / len(w) for w in windows]

    gold = project_gold(project)["annotator"]
    assert gold["gold_answers"] == 130 and gold["gold_accuracy"] == 0.5 and gold["rolling_gold_accuracy"] == 0.0
    assert gold["rolling_series_start"] == 30 and gold["rolling_series"] == expected[30:]
    short = project_gold(project, series_points=500)["annotator"]
    assert short["rolling_series_start"] == 0 and short["rolling_series"] == expected
