"""Composites: creating and changing one (every input validated here, whichever door it came in by) and computing
its scores (judging.stacking.combine has the arithmetic)."""

from __future__ import annotations

import itertools
import math
import uuid

import numpy as np
import orjson
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Project

from ..models import Composite, CompositeScore
from ..selectors import judges_for
from .combine import Combined, combine, summarise
from .selectors import scorer_margins

MAX_AXES = 20
MAX_SCORERS = 20
WRITE_BATCH = 5000

MAX_WEIGHT = 1e6  # weights are relative; beyond this a sum of weighted margins can overflow to inf


def _weight(value, where: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0
            or value > MAX_WEIGHT):  # fmt: skip
        raise ValidationError({"axes": f"{where}: the weight must be a number above 0 and at most {MAX_WEIGHT:g} "
                                       f"(got {value!r})."})  # fmt: skip
    return float(value)


def _resolve(project: Project, ref, where: str) -> int:
    """A judge of the project (or a shared one) named by pk, public id or name; the same refusal for a judge that
    does not exist and one of another project, so other projects' judges cannot be probed."""
    judges = judges_for(project)
    found = None
    if isinstance(ref, int) and not isinstance(ref, bool):
        found = judges.filter(pk=ref).first()
    elif isinstance(ref, str | uuid.UUID) and str(ref).strip():
        text = str(ref).strip()
        try:
            found = judges.filter(public_id=uuid.UUID(text)).first()
        except ValueError:
            found = judges.filter(name=text).first()
    if found is None:
        raise ValidationError({"axes": f"{where}: no judge {ref!r} in this project."})
    return found.pk


def clean_axes(project: Project, axes) -> list[dict]:
    """Axes as stored: [{"name", "weight", "scorers": [{"judge": pk, "weight"}]}]. Judges may be given by pk,
    public id or name; every problem is a ValidationError on ``axes`` that says where."""
    if not isinstance(axes, list) or not axes:
        raise ValidationError({"axes": "Give at least one axis."})
    if len(axes) > MAX_AXES:
        raise ValidationError({"axes": f"At most {MAX_AXES} axes."})
    clean, seen = [], set()
    for i, axis in enumerate(axes, start=1):
        if not isinstance(axis, dict) or set(axis) - {"name", "weight", "scorers"}:
            raise ValidationError({"axes": f"Axis {i}: expected name, weight and scorers."})
        name = axis.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
            raise ValidationError({"axes": f"Axis {i}: give it a name (at most 100 characters)."})
        name = name.strip()
        where = f"Axis {i} ({name})"
        if name.casefold() in seen:
            raise ValidationError({"axes": f"{where}: another axis has this name."})
        seen.add(name.casefold())
        weight = _weight(axis.get("weight", 1.0), where)
        scorers = axis.get("scorers")
        if not isinstance(scorers, list) or not scorers:
            raise ValidationError({"axes": f"{where}: give it at least one scorer."})
        if len(scorers) > MAX_SCORERS:
            raise ValidationError({"axes": f"{where}: at most {MAX_SCORERS} scorers."})
        clean_scorers = []
        for j, scorer in enumerate(scorers, start=1):
            spot = f"{where}, scorer {j}"
            if not isinstance(scorer, dict) or "judge" not in scorer or set(scorer) - {"judge", "weight"}:
                raise ValidationError({"axes": f"{spot}: expected judge and weight."})
            judge = _resolve(project, scorer["judge"], spot)
            if any(s["judge"] == judge for s in clean_scorers):
                raise ValidationError({"axes": f"{spot}: this judge is already a scorer of the axis."})
            clean_scorers.append({"judge": judge, "weight": _weight(scorer.get("weight", 1.0), spot)})
        clean.append({"name": name, "weight": weight, "scorers": clean_scorers})
    return clean


def _clean_name(project: Project, name, exclude: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise ValidationError({"name": "A composite needs a name (at most 100 characters)."})
    name = name.strip()
    if Composite.objects.filter(project=project, name=name).exclude(pk=exclude).exists():
        raise ValidationError({"name": f"The project already has a composite named {name}."})
    return name


def _clean_normalisation(value) -> str:
    if value not in Composite.Normalisation.values:
        choices = ", ".join(Composite.Normalisation.values)
        raise ValidationError({"normalisation": f"Normalisation must be one of {choices}."})
    return value


@transaction.atomic
def composite_create(*, project: Project, user, name: str, axes, normalisation: str = "z") -> Composite:
    Project.objects.select_for_update().filter(pk=project.pk).get()  # two creates of one name: one wins
    return Composite.objects.create(project=project, name=_clean_name(project, name), created_by=user,
                                    normalisation=_clean_normalisation(normalisation),
                                    axes=clean_axes(project, axes))  # fmt: skip


@transaction.atomic
def composite_update(*, composite: Composite, name: str | None = None, axes=None,
                     normalisation: str | None = None) -> Composite:  # fmt: skip
    """Change what is given. New axes or a new normalisation make the stored scores stale: they are deleted (the
    composite is uncomputed until the next compute)."""
    locked = Composite.objects.select_for_update().get(pk=composite.pk)
    project = locked.project
    if name is not None:
        locked.name = _clean_name(project, name, exclude=locked.pk)
    changed = False
    if normalisation is not None and _clean_normalisation(normalisation) != locked.normalisation:
        locked.normalisation, changed = normalisation, True
    if axes is not None:
        clean = clean_axes(project, axes)
        changed = changed or clean != locked.axes
        locked.axes = clean
    if changed:
        CompositeScore.objects.filter(composite=locked).delete()
        locked.stats, locked.computed_at = {}, None
    locked.save()
    return locked


def _score_rows(combined: Combined):
    """(pair id, value, axes as JSON text) per scored pair."""
    names = list(combined.axes)
    present = np.stack([~np.isnan(combined.axes[n]) for n in names], axis=1)
    values = np.stack([combined.axes[n] for n in names], axis=1).tolist()
    for pair_id, value, row, has in zip(combined.pair_ids.tolist(), combined.value.tolist(), values, present.tolist(),
                                        strict=True):  # fmt: skip
        yield pair_id, value, orjson.dumps({n: v for n, v, h in zip(names, row, has, strict=True) if h}).decode()


def _write_scores(composite: Composite, combined: Combined) -> None:
    """Insert every score: COPY on PostgreSQL (~10x bulk_create at 100k pairs), bulk_create in batches elsewhere."""
    rows = _score_rows(combined)
    if connection.vendor == "postgresql":
        statement = f"COPY {CompositeScore._meta.db_table} (composite_id, pair_id, value, axes) FROM STDIN"
        raw = connection.connection  # psycopg 3, inside Django's transaction
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row((composite.pk, *row))
        return
    while batch := list(itertools.islice(rows, WRITE_BATCH)):
        CompositeScore.objects.bulk_create(
            CompositeScore(composite=composite, pair_id=pair_id, value=value, axes=orjson.loads(axes))
            for pair_id, value, axes in batch
        )


@transaction.atomic
def composite_compute(*, composite: Composite) -> Composite:
    """Recompute every score from the scorers' current judgements and replace the stored ones, all at once (a reader
    sees the old scores or the new, never a mix). Idempotent: unchanged judgements give the same rows."""
    locked = Composite.objects.select_for_update().get(pk=composite.pk)  # one compute of a composite at a time
    margins, versions = scorer_margins(locked)
    combined = combine(locked.axes, margins, locked.normalisation)
    CompositeScore.objects.filter(composite=locked).delete()
    _write_scores(locked, combined)
    locked.stats = {**summarise(locked.axes, margins, combined), "versions": {str(k): v for k, v in versions.items()}}
    locked.computed_at = timezone.now()
    locked.save(update_fields=["stats", "computed_at"])
    return locked
