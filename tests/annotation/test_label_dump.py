"""The raw label dump (issue 21): one row per label of every kind and source, the same rows in JSONL and Parquet,
pseudonyms, empty projects, and streaming in batches."""

import inspect
import io
import json
from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest
from django.utils import timezone

import annotation.label_dump as label_dump_module
from annotation.label_dump import CONTENT_TYPES, SCHEMA, label_dump
from annotation.models import Assignment, GuidelineVersion, Label
from tests.factories import ProjectFactory, UserFactory, make_pairs, member

pytestmark = pytest.mark.django_db


TIMES = ("served_at", "finished_at", "created_at")


def _moment(text: str | None) -> datetime | None:
    """A JSONL time: ISO 8601 in UTC, with a "Z"."""
    if text is None:
        return None
    assert text.endswith("Z") and "T" in text, text
    return datetime.fromisoformat(text)


def _human(project, pair, user, kind, *, left_is_a, choice, **fields) -> Label:
    served = timezone.now() - timedelta(minutes=5)
    version = GuidelineVersion.objects.get(project=project, version=1)
    assignment = Assignment.objects.create(
        project=project, pair=pair, annotator=user, kind=kind, state=Assignment.State.DONE, left_is_a=left_is_a,
        guideline_version=version, served_at=served, expires_at=served + timedelta(minutes=15),
        finished_at=served + timedelta(seconds=42),
    )  # fmt: skip
    return Label.objects.create(
        project=project, pair=pair, assignment=assignment, annotator=user, source=Label.Source.HUMAN, choice=choice,
        left_is_a=left_is_a, guideline_version=version, **fields,
    )  # fmt: skip


@pytest.fixture
def labelled(project, annotator):
    """Six labels: regular ×2, calibration, mirrored repeat, practice and imported; plus another project's label."""
    project.strength_scale = ["slightly", "clearly", "much"]
    project.criteria = ["helpfulness"]
    project.save()
    bob = UserFactory(username="bob")
    member(project, bob)
    p0, p1, gold = make_pairs(project, 3)
    gold.gold = "A"
    gold.save()
    _human(project, p0, annotator, Assignment.Kind.REGULAR, left_is_a=True, choice="A", strength=2,
           rationale="A cites its source.", criteria={"helpfulness": "A"}, time_on_item_ms=1200)  # fmt: skip
    _human(project, p0, bob, Assignment.Kind.REGULAR, left_is_a=False, choice="B", criteria={"helpfulness": "tie"})
    _human(project, gold, annotator, Assignment.Kind.GOLD, left_is_a=False, choice="A", strength=3)
    _human(project, p0, annotator, Assignment.Kind.REPEAT, left_is_a=False, choice="tie")
    _human(project, gold, bob, Assignment.Kind.PRACTICE, left_is_a=True, choice="both_bad")
    Label.objects.create(project=project, pair=p1, source=Label.Source.EXTERNAL, external_annotator="rater-7",
                         choice="B")  # fmt: skip
    other = ProjectFactory()
    [elsewhere] = make_pairs(other, 1)
    Label.objects.create(project=other, pair=elsewhere, source=Label.Source.EXTERNAL, external_annotator="z",
                         choice="A")  # fmt: skip
    return project


def _jsonl_rows(project, **kwargs) -> list[dict]:
    data = b"".join(label_dump(project, fmt="jsonl", **kwargs))
    return [json.loads(line) for line in data.splitlines()]


def _parquet_table(project, **kwargs):
    return pq.read_table(io.BytesIO(b"".join(label_dump(project, fmt="parquet", **kwargs))))


def test_jsonl_has_one_row_per_label_with_kind_side_choice_and_strength(labelled):
    rows = _jsonl_rows(labelled, pseudonymize=False)
    labels = list(Label.objects.filter(project=labelled).select_related("pair", "assignment").order_by("pk"))
    assert [r["label_id"] for r in rows] == [label.pk for label in labels]
    assert all(list(r) == list(SCHEMA.names) for r in rows)
    assert [(r["annotator"], r["source"], r["kind"], r["shown_left"], r["choice"]) for r in rows] == [
        ("annotator", "human", "regular", "A", "A"),
        ("bob", "human", "regular", "B", "B"),
        ("annotator", "human", "calibration", "B", "A"),
        ("annotator", "human", "repeat", "B", "tie"),
        ("bob", "human", "practice", "A", "both_bad"),
        ("rater-7", "external", "imported", None, "B"),
    ]
    assert [(r["strength"], r["strength_label"]) for r in rows] == [
        (2, "clearly"), (None, None), (3, "much"), (None, None), (None, None), (None, None)
    ]  # fmt: skip
    first, imported = rows[0], rows[-1]
    assert first["criteria"] == {"helpfulness": "A"} and rows[1]["criteria"] == {"helpfulness": "tie"}
    assert (first["rationale"], first["time_on_item_ms"]) == ("A cites its source.", 1200)
    assert first["guideline_version"] == 1
    assert first["pair_id"] == labels[0].pair_id and first["pair_external_id"] == labels[0].pair.external_id
    assert _moment(first["served_at"]) == labels[0].assignment.served_at
    assert _moment(first["finished_at"]) == labels[0].assignment.finished_at
    assert _moment(first["created_at"]) == labels[0].created_at
    assert imported["criteria"] == {} and imported["guideline_version"] is None
    assert (imported["served_at"], imported["finished_at"]) == (None, None)
    assert _moment(imported["created_at"]) == labels[-1].created_at


@pytest.mark.parametrize("pseudonymize", [False, True])
def test_parquet_holds_the_same_rows_as_jsonl(labelled, pseudonymize):
    table = _parquet_table(labelled, pseudonymize=pseudonymize)
    assert table.schema == SCHEMA
    from_parquet = [{**row, "criteria": json.loads(row["criteria"])} for row in table.to_pylist()]
    from_jsonl = [
        {**row, **{k: _moment(row[k]) for k in TIMES}} for row in _jsonl_rows(labelled, pseudonymize=pseudonymize)
    ]
    assert from_parquet == from_jsonl
    assert len(from_parquet) == 6


def test_pseudonyms_are_stable_per_annotator_in_order_of_first_label(labelled):
    rows = _jsonl_rows(labelled, pseudonymize=True)
    assert [r["annotator"] for r in rows] == [
        "annotator-1", "annotator-2", "annotator-1", "annotator-1", "annotator-2", "annotator-3"
    ]  # fmt: skip
    for fmt in CONTENT_TYPES:
        data = b"".join(label_dump(labelled, fmt=fmt, pseudonymize=True))
        assert b"bob" not in data and b"rater-7" not in data


def test_an_empty_project_gives_valid_files(project):
    assert b"".join(label_dump(project, fmt="jsonl", pseudonymize=False)) == b""
    table = _parquet_table(project, pseudonymize=True)
    assert table.num_rows == 0 and table.schema == SCHEMA


def test_an_unknown_format_is_refused_before_anything_is_read(project, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(ValueError, match="csv"):
        label_dump(project, fmt="csv", pseudonymize=False)


class _CountingCursor:
    """The dump's database cursor, counting the rows it has handed out."""

    def __init__(self, cursor, fetched: list[int]):
        self.cursor, self.fetched = cursor, fetched

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cursor.close()

    def __getattr__(self, name):
        method = getattr(self.cursor, name)
        if not name.startswith("fetch"):
            return method

        def fetch(*args):
            rows = method(*args)
            self.fetched.append(len(rows))
            return rows

        return fetch


@pytest.mark.parametrize("fmt", sorted(CONTENT_TYPES))
def test_the_dump_streams_one_chunk_per_batch(labelled, fmt, monkeypatch, django_assert_num_queries):
    fetched: list[int] = []
    real = label_dump_module.connection

    class Spy:  # the connection, with a cursor that counts the rows it fetches
        def __getattr__(self, name):
            return getattr(real, name)

        def chunked_cursor(self):
            return _CountingCursor(real.chunked_cursor(), fetched)

    monkeypatch.setattr(label_dump_module, "connection", Spy())
    with django_assert_num_queries(0):
        chunks = label_dump(labelled, fmt=fmt, pseudonymize=False, batch_size=2)
    assert inspect.isgenerator(chunks)
    first = next(chunks)
    assert sum(fetched) == 2, "the first chunk must leave after the first 2 rows, not after the whole query"
    rest = list(chunks)
    assert fetched == [2, 2, 2, 0]
    if fmt == "jsonl":
        assert [len(c.splitlines()) for c in [first, *rest]] == [2, 2, 2]
    else:  # a row group per batch, then the footer
        assert len(rest) == 3
        assert pq.ParquetFile(io.BytesIO(first + b"".join(rest))).metadata.num_row_groups == 3
