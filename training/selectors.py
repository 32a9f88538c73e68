"""Reads for curation and exports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from queue import Empty, Full, Queue

import numpy as np
import orjson
from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Q, Sum, TextField, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from annotation.models import Assignment, Label, Membership, Pair, Project
from annotation.selectors import pair_id_ranges, project_agreement_figures
from judging.models import PairJudgement, PromptVersion
from judging.prompts import render_conversation

from .columns import query_columns
from .curation import GOLD_CHOICES, LEVEL, NO_GOLD, NONE, Candidates, TextReader
from .models import CurationRecipe, DatasetExport

TEXT_BATCH = 5_000  # pairs whose texts are read per statement: a few MB of Python strings
READ_AHEAD = 2  # batches of texts a background reader may hold ready (see pair_text_reader)


def _code(column: str, values: tuple[str, ...], default: int) -> Case:
    return Case(*(When(**{column: v}, then=Value(i)) for i, v in enumerate(values)), default=Value(default),
                output_field=IntegerField())  # fmt: skip


def _majority(votes: np.ndarray) -> np.ndarray:
    """Per row of a (rows, 3) vote count matrix: the column with most votes, LEVEL when the top two are level."""
    ranked = np.sort(votes, axis=1)
    return np.where(ranked[:, -1] > ranked[:, -2], votes.argmax(axis=1), LEVEL).astype(np.int8)


def _place(pair_ids: np.ndarray, ids: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-pair values given for ``ids`` (any order) spread over the sorted ``pair_ids``, 0 elsewhere."""
    pos = np.searchsorted(pair_ids, ids)
    found = pos < len(pair_ids)
    found[found] = pair_ids[pos[found]] == ids[found]  # a pair deleted between the two reads
    out = {}
    for name, column in values.items():
        out[name] = np.zeros(len(pair_ids), dtype=column.dtype)
        out[name][pos[found]] = column[found]
    return out


def _human_votes(project: Project, pair_ids: np.ndarray, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Per pair, the labels annotation.selectors.pair_consensus counts (imported and regular human labels, paused
    annotators left out): votes for A, for B, for no preference. And, as curation always counted them, tie and
    both-bad votes of every imported and regular label (paused annotators included). One GROUP BY."""
    paused = Membership.objects.filter(project=project, paused_at__isnull=False).values("user_id")
    counted = Q(annotator__isnull=True) | ~Q(annotator_id__in=paused)
    rows = (
        Label.objects.filter(project=project, pair_id__gte=lo, pair_id__lte=hi)
        .filter(Q(source=Label.Source.EXTERNAL) | Q(assignment__kind=Assignment.Kind.REGULAR))
        .values("pair_id")
        .annotate(
            a=Count("pk", filter=counted & Q(choice="A")),
            b=Count("pk", filter=counted & Q(choice="B")),
            none=Count("pk", filter=counted & Q(choice__in=["tie", "both_bad"])),
            tie=Count("pk", filter=Q(choice="tie")),
            both_bad=Count("pk", filter=Q(choice="both_bad")),
        )
        .order_by()
        .values_list("pair_id", "a", "b", "none", "tie", "both_bad")
    )
    columns = query_columns(rows, {"pair_id": "i8", "a": "i8", "b": "i8", "none": "i8", "tie": "i8",
                                   "both_bad": "i8"})  # fmt: skip
    return _place(pair_ids, columns.pop("pair_id"), columns)


def _latest_prompt_versions(project: Project) -> list[int]:
    """Each judge's latest prompt version among those that judged the project's pairs."""
    versions = (
        PromptVersion.objects.filter(judgements__pair__project=project)
        .values_list("judge_id", "version", "pk")
        .distinct()
    )
    latest: dict[int, tuple[int, int]] = {}
    for judge_id, version, pk in versions:
        if judge_id not in latest or version > latest[judge_id][0]:
            latest[judge_id] = (version, pk)
    return [pk for _, pk in latest.values()]


def _judge_aggregate(project: Project, latest: list[int], pair_ids: np.ndarray, lo: int, hi: int,
                     ) -> dict[str, np.ndarray]:  # fmt: skip
    """judging.selectors.pair_judge_aggregate as columns: per pair, over every judge's latest prompt version
    (``latest``), how many judges, votes for A / B / tie, the sum of margins and the consistent judges."""
    names = ("judges", "a", "b", "tie", "margin", "consistent")
    if not latest:
        return {name: np.zeros(len(pair_ids), dtype=np.float64 if name == "margin" else np.int64) for name in names}
    rows = (
        PairJudgement.objects.filter(
            pair__project=project, pair_id__gte=lo, pair_id__lte=hi, prompt_version_id__in=latest
        )  # fmt: skip
        .values("pair_id")
        .annotate(
            judges=Count("pk"),
            a=Count("pk", filter=Q(winner="A")),
            b=Count("pk", filter=Q(winner="B")),
            tie=Count("pk", filter=Q(winner="tie")),
            margin=Sum("margin"),
            consistent=Count("pk", filter=Q(consistent=True)),
        )
        .order_by()
        .values_list("pair_id", *names)
    )
    columns = query_columns(rows, {"pair_id": "i8", **{n: "f8" if n == "margin" else "i8" for n in names}})
    return _place(pair_ids, columns.pop("pair_id"), columns)


ARRAY_CHUNK = 250_000  # pair ids per set-based statement: bounds the size of one result


def _pair_columns(project: Project, lo: int, hi: int) -> dict[str, np.ndarray]:
    return query_columns(
        Pair.objects.filter(project=project, pk__gte=lo, pk__lte=hi)
        .annotate(gold_code=_code("gold", GOLD_CHOICES, NO_GOLD))
        .values_list("pk", "gold_code", "response_a_chars", "response_b_chars"),
        {"pair_id": "i8", "gold": "i8", "chars_a": "i8", "chars_b": "i8"},
    )


def _candidate_columns(project: Project, latest: list[int], lo: int, hi: int) -> dict[str, np.ndarray]:
    """The Candidates columns of the pairs with ids in [lo, hi], sorted by id."""
    pairs = _pair_columns(project, lo, hi)
    order = np.argsort(pairs["pair_id"])
    pairs = {name: column[order] for name, column in pairs.items()}
    pair_ids, gold = pairs["pair_id"], pairs["gold"].astype(np.int8)
    human = _human_votes(project, pair_ids, lo, hi)
    votes = np.stack([human["a"], human["b"], human["none"]], axis=1).astype(np.int32)
    votes[gold != NO_GOLD] = 0  # consensus leaves calibration pairs out
    labels = votes.sum(axis=1)
    share = np.maximum(labels, 1)
    judge = _judge_aggregate(project, latest, pair_ids, lo, hi)
    judge_winner = _majority(np.stack([judge["a"], judge["b"], judge["tie"]], axis=1))
    return {
        "pair_id": pair_ids,
        "gold": gold,
        "human_labels": labels.astype(np.int32),
        "human_majority": _majority(votes),
        "human_vote_margin": np.where(labels > 0, (votes[:, 0] - votes[:, 1]) / share, 0.0),
        "human_agreement": np.where(labels > 0, votes.max(axis=1) / share, 0.0),
        "human_tie": human["tie"].astype(np.int32),
        "human_both_bad": human["both_bad"].astype(np.int32),
        "judges": judge["judges"].astype(np.int32),
        "judge_winner": np.where(judge_winner == LEVEL, NONE, judge_winner).astype(np.int8),
        "judge_mean_margin": judge["margin"] / np.maximum(judge["judges"], 1),
        "judge_consistent": judge["consistent"].astype(np.int32),
        "chars_a": pairs["chars_a"].astype(np.int32),
        "chars_b": pairs["chars_b"].astype(np.int32),
    }


def curation_candidates(project: Project) -> Candidates:
    """Every pair of the project as columns (training.curation.Candidates): its human consensus as
    annotation.selectors.pair_consensus computes it (paused annotators left out; calibration pairs have none), tie
    and both-bad vote counts, its judge aggregate as judging.selectors.pair_judge_aggregate computes it, and its
    response lengths. Set-based statements over ranges of about ARRAY_CHUNK pair ids; no text is read (the returned
    text reader reads them later, in batches)."""
    latest = _latest_prompt_versions(project)
    parts = [_candidate_columns(project, latest, lo, hi) for lo, hi in pair_id_ranges(project, ARRAY_CHUNK)]
    if not parts:
        parts = [_candidate_columns(project, latest, 1, 0)]
    columns = {name: np.concatenate([part.pop(name) for part in parts]) for name in list(parts[0])}
    return Candidates(**columns, texts=pair_text_reader(project, columns["pair_id"]))


def _simple_prompt_sql() -> str:
    """SQL for the text of a prompt that is one message, from the user (or without a role), whose content is a
    string: render_conversation gives that content as it is. NULL for any other prompt."""
    if connection.vendor == "postgresql":
        return """CASE WHEN jsonb_typeof(prompt) <> 'array' THEN NULL
                       WHEN jsonb_array_length(prompt) = 1
                            AND COALESCE(prompt -> 0 -> 'role', '"user"'::jsonb) = '"user"'::jsonb
                            AND jsonb_typeof(prompt -> 0 -> 'content') = 'string'
                       THEN prompt -> 0 ->> 'content' END"""
    return """CASE WHEN json_type(prompt) <> 'array' THEN NULL
                   WHEN json_array_length(prompt) = 1
                        AND (json_type(prompt, '$[0].role') IS NULL OR (json_type(prompt, '$[0].role') = 'text'
                                                                        AND json_extract(prompt, '$[0].role') = 'user'))
                        AND json_type(prompt, '$[0].content') = 'text'
                   THEN json_extract(prompt, '$[0].content') END"""


def _text_columns(wanted: tuple[str, ...]) -> dict:
    """The annotations pair_text_reader selects for the wanted fields."""
    columns = {}
    for field in wanted:
        if field == "prompt":
            columns["t_prompt"] = Cast("prompt", TextField())
        elif field == "prompt_text":
            simple = _simple_prompt_sql()
            columns["t_simple"] = RawSQL(simple, [], output_field=TextField())
            columns["t_other"] = RawSQL(f"CASE WHEN ({simple}) IS NULL THEN CAST(prompt AS TEXT) END", [],
                                        output_field=TextField())  # fmt: skip
        elif field in ("response_a", "response_b"):
            columns[f"t_{field}"] = F(field)
        else:
            raise ValueError(f"unknown text field {field!r}")
    return columns


def pair_text_reader(project: Project, all_ids: np.ndarray, *, batch: int | None = None,
                     read_ahead: bool | None = None) -> TextReader:  # fmt: skip
    """A reader of the texts of some of the project's pairs (``all_ids``: all of them, sorted), ``batch`` pairs per
    statement (default TEXT_BATCH), in pair id order. A batch whose pairs are most of an id range is read as that
    range (an index range scan; the other pairs' rows are skipped here), otherwise by id list. Fields: ``prompt``
    (the message list: JSON text parsed with orjson), ``prompt_text`` (judging.prompts.render_conversation of it; the
    database gives the text of a one-message prompt itself, so most prompts are never parsed here), ``response_a``
    and ``response_b``.

    Read-ahead: on PostgreSQL, outside a transaction, a background thread with its own connection reads the next
    batches (at most READ_AHEAD waiting) while the caller works on the current one: psycopg releases the GIL while
    the server (another process, another core) runs the query and sends the rows. Inside a transaction
    (``atomic()``, and the tests' transactions) another connection would not see the uncommitted pairs, so the
    batches are read on the caller's connection, one after the other. ``read_ahead`` forces either way."""
    batch = batch or TEXT_BATCH

    def batches(pair_ids: np.ndarray, wanted: tuple[str, ...]) -> Iterator[tuple[np.ndarray, dict[str, list]]]:
        columns = _text_columns(wanted)
        for start in range(0, len(pair_ids), batch):
            chunk = pair_ids[start : start + batch]
            lo, hi = int(chunk[0]), int(chunk[-1])
            span = np.searchsorted(all_ids, hi, side="right") - np.searchsorted(all_ids, lo)
            pairs = Pair.objects.filter(project=project)
            if span <= 2 * len(chunk):
                pairs = pairs.filter(pk__gte=lo, pk__lte=hi)
            else:
                pairs = pairs.filter(pk__in=chunk.tolist())
            query = pairs.annotate(**columns).order_by("pk").values_list("pk", *columns)
            sql, params = query.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            keep = np.isin(ids, chunk, assume_unique=True)
            if int(keep.sum()) != len(chunk):
                raise RuntimeError("pairs were deleted while their texts were being read")
            if not keep.all():
                rows = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
            values = dict(zip(columns, (list(c) for c in list(zip(*rows, strict=True))[1:]), strict=True))
            out = {}
            for field in wanted:
                if field == "prompt":
                    out[field] = [orjson.loads(p) for p in values["t_prompt"]]
                elif field == "prompt_text":  # rendered by the database, or here from the JSON where it is not simple
                    simple, other = values["t_simple"], values["t_other"]
                    out[field] = [text if text is not None else render_conversation(orjson.loads(json))
                                  for text, json in zip(simple, other, strict=True)]  # fmt: skip
                else:
                    out[field] = values[f"t_{field}"]
            yield chunk, out

    def read(pair_ids: np.ndarray, wanted: tuple[str, ...]) -> Iterator[tuple[np.ndarray, dict[str, list]]]:
        ahead = read_ahead
        if ahead is None:
            ahead = connection.vendor == "postgresql" and not connection.in_atomic_block
        if ahead and len(pair_ids) > batch:
            return _read_ahead(lambda: batches(pair_ids, wanted))
        return batches(pair_ids, wanted)

    return read


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _read_ahead(produce: Callable[[], Iterator], depth: int = READ_AHEAD) -> Iterator:
    """The items of ``produce()``, made by a background thread (with its own database connection, closed when it
    ends) at most ``depth`` ahead of the caller. An error in the thread is raised in the caller; a caller that
    stops early stops the thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # handed to the caller
            put(_Failed(exc))
        finally:
            connection.close()  # this thread's connection

    def items() -> Iterator:
        thread = threading.Thread(target=work, name="pair-text-reader", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = queue.get(timeout=1.0)
                except Empty:
                    if not thread.is_alive() and queue.empty():
                        raise RuntimeError("the text reader thread ended without a result") from None
                    continue
                if item is end:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
            thread.join()

    return items()


def recipes_of(project: Project):
    """The latest version of each recipe."""
    latest = {}
    for recipe in CurationRecipe.objects.filter(project=project).order_by("name", "-version"):
        latest.setdefault(recipe.name, recipe)
    return list(latest.values())


def exports_of(project: Project):
    return DatasetExport.objects.filter(project=project).select_related("recipe", "created_by")[:100]


def agreement_for_datasheet(project: Project) -> dict:
    """Label space, labels, Fleiss' kappa, Krippendorff's alpha and percent agreement with their intervals."""
    return project_agreement_figures(project, n_boot=200)
