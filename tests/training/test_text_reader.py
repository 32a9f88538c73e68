"""Reading pair texts ahead on a second connection: the same batches as reading them in turn, errors reach the
caller, a caller that stops early stops the reader thread, and inside a transaction the caller's connection is used
(another connection would not see the uncommitted pairs)."""

import threading

import numpy as np
import pytest

from annotation.models import Pair
from tests.training.conftest import labelled
from training.curation import texts
from training.curation.texts import _read_ahead, pair_text_reader
from training.export.build import export_build
from training.models import DatasetExport
from training.services.recipes import recipe_save


def reader_threads():
    return [t for t in threading.enumerate() if t.name == "pair-text-reader"]


def test_read_ahead_gives_every_item_in_order_and_stops_with_the_caller():
    assert list(_read_ahead(lambda: iter(range(50)))) == list(range(50))
    items = _read_ahead(lambda: iter(range(1000)))
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # the caller stops early: the thread is told to stop and joined
    assert reader_threads() == []


def test_an_error_in_the_reader_thread_reaches_the_caller():
    def produce():
        yield 1
        raise ValueError("broken batch")

    items = _read_ahead(produce)
    assert next(items) == 1
    with pytest.raises(ValueError, match="broken batch"):
        next(items)
    assert reader_threads() == []


@pytest.mark.postgres  # read-ahead is PostgreSQL's (SQLite reads in turn)
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_texts_are_read_ahead_and_the_export_is_the_same(project, lead, monkeypatch):
    labelled(project, n=30)
    ids = np.array(sorted(Pair.objects.filter(project=project).values_list("pk", flat=True)), dtype=np.int64)
    wanted = ids[np.arange(len(ids)) % 3 != 1]  # some id ranges, some id lists
    reader = pair_text_reader(project, ids, batch=4)(wanted, ("prompt", "response_a", "response_b"))
    ahead = [next(reader)]
    # 5 batches, at most 2 waiting: the thread cannot have finished while the first is unread
    assert len(reader_threads()) == 1
    ahead += list(reader)
    assert reader_threads() == []
    in_turn = list(pair_text_reader(project, ids, batch=4, read_ahead=False)(wanted, ("prompt", "response_b")))
    assert [chunk.tolist() for chunk, _ in ahead] == [chunk.tolist() for chunk, _ in in_turn]
    assert [b["prompt"] for _, b in ahead] == [b["prompt"] for _, b in in_turn]
    assert [b["response_b"] for _, b in ahead] == [b["response_b"] for _, b in in_turn]

    monkeypatch.setattr(texts, "TEXT_BATCH", 4)  # the export reads its 30 pairs in 8 batches
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    first, second = (DatasetExport.objects.create(project=project, recipe=recipe, format="dpo", created_by=lead)
                     for _ in range(2))  # fmt: skip
    export_build(first, read_ahead=True)
    export_build(second, read_ahead=False)  # the same export, read in turn
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == first.State.SUCCEEDED and first.rows_train > 0
    assert second.content_hash == first.content_hash
    for name in ("train.jsonl", "train.parquet", "train.csv", "test.jsonl", "test.parquet", "test.csv", "hf.zip"):
        assert second.files[name]["sha256"] == first.files[name]["sha256"], name


@pytest.mark.django_db
def test_inside_a_transaction_texts_are_read_on_the_callers_connection(project):
    labelled(project, n=10)
    ids = np.array(sorted(Pair.objects.filter(project=project).values_list("pk", flat=True)), dtype=np.int64)
    reader = pair_text_reader(project, ids, batch=3)(ids, ("response_a",))
    batches = [next(reader)]
    assert reader_threads() == []  # no background connection: it would not see this transaction's pairs
    batches += list(reader)
    assert sum(len(chunk) for chunk, _ in batches) == 10


PROMPTS = [
    [{"role": "user", "content": "plain"}],
    [{"content": "no role"}],
    [{"role": "user", "content": 'é 漢字 😀 "quoted" \\ back\nslash\t\u2028'}],
    [{"role": "user", "content": ""}],
    [{"role": "user"}],  # no content: ""
    [{"role": "user", "content": 7}],  # not a string: the JSON path
    [{"role": "system", "content": "be brief"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
    [],
]


@pytest.mark.django_db
@pytest.mark.parametrize("batch", [3, 100])
def test_prompt_text_is_render_conversation(project, batch):
    """The database renders one-message prompts; every prompt's text is judging.prompts.render_conversation's."""
    from judging.prompts import render_conversation
    from tests.factories import make_pairs

    pairs = make_pairs(project, len(PROMPTS))
    for pair, prompt in zip(pairs, PROMPTS, strict=True):
        Pair.objects.filter(pk=pair.pk).update(prompt=prompt)
    ids = np.array(sorted(p.pk for p in pairs), dtype=np.int64)
    read = list(pair_text_reader(project, ids, batch=batch)(ids, ("prompt_text", "prompt", "response_a")))
    texts = [t for _, b in read for t in b["prompt_text"]]
    assert texts == [render_conversation(p) for p in PROMPTS]
    assert [p for _, b in read for p in b["prompt"]] == PROMPTS
