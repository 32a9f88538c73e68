"""Sweeps, whichever door (page, API, command) the admin came in by: create one (every run validated before any is
queued), cancel it, promote a run. What happens as runs end is training.sweeps.flow's."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from ..models import DatasetExport, Sweep
from ..sweeps.compare import METRICS
from ..sweeps.flow import sweep_cancel, sweep_promote
from ..sweeps.points import axes_as_json, parse_axes, point_label, sweep_points
from .jobs import job_create

__all__ = ["sweep_cancel", "sweep_create", "sweep_promote"]


def sweep_create(*, export: DatasetExport, user, axes, preset: str = "dpo-lora", settings_: dict | None = None,
                 mode: str = "grid", draws: int = 0, seed: int = 0, max_runs: int = 16,
                 budget_minutes: float | None = None, metric: str = "", name: str = "",
                 prune_at: float = 0.0) -> Sweep:  # fmt: skip
    """Validate the axes and every run's settings, then queue all runs in one transaction (none when any is bad)."""
    if user is not None and not user.is_staff:
        raise PermissionDenied("Only admins launch sweeps.")
    if mode not in Sweep.Mode.values:
        raise ValidationError({"mode": f"must be one of {', '.join(Sweep.Mode.values)}"})
    if metric and metric not in METRICS:
        raise ValidationError({"metric": f"must be one of {', '.join(METRICS)}"})
    if not 1 <= max_runs <= 256:
        raise ValidationError({"max_runs": "must be between 1 and 256"})
    if budget_minutes is not None and budget_minutes <= 0:
        raise ValidationError({"budget_minutes": "must be above 0 (or empty: no limit)"})
    if not 0 <= prune_at < 1:
        raise ValidationError({"prune_at": "must be in [0, 1): the share of a run's steps at which it is compared"})
    settings_ = dict(settings_ or {})
    try:
        parsed = parse_axes(axes)
        points = sweep_points(parsed, mode=mode, draws=draws, seed=seed, max_runs=max_runs)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        if field in ("max_runs", "draws", "axes"):
            raise ValidationError({field: message}) from None
        raise ValidationError({"axes": str(exc)}) from None  # "axes line 2: betta: ..." keeps its line
    with transaction.atomic():  # job_create validates each run; one bad run rolls every queued one back
        sweep = Sweep.objects.create(
            project=export.project, export=export, name=name.strip(), preset=preset, settings=settings_,
            axes=axes_as_json(parsed), mode=mode, draws=draws, seed=seed, max_runs=max_runs,
            budget_minutes=budget_minutes, metric=metric, prune_at=prune_at, created_by=user,
            stage=f"{len(points)} runs queued",
        )  # fmt: skip
        for number, point in enumerate(points, 1):
            name = f"{sweep.name or 'sweep'} #{number}: {point_label(point)}"[:200]
            try:
                job_create(export=export, user=user, preset=preset, settings_={**settings_, **point}, sweep=sweep,
                           sweep_point=point, name=name)  # fmt: skip
            except ValidationError as exc:
                errors = getattr(exc, "message_dict", {})
                if set(errors) <= {"export", "base_model"}:
                    raise  # the same for every run: not the point's fault
                text = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
                raise ValidationError({"axes": f"run {number} ({point_label(point)}): {text}"}) from None
    return sweep
