"""A sweep's runs side by side: one row of figures per run, the best run by a chosen metric (with its interval),
the β–KL points and each run's curves.

Figures come from where each is recorded: the last logged step (loss, margin, accuracy, KL estimate), the runner's
held-out evaluation (preference accuracy, implicit-reward accuracy, sampled KL), the run's latest finished
evaluation against its base (win rate, LC win rate, mean length change; training.evaluations) and the job's summary
(tokens/s, wall time).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from ..jobs.spec import JobSpec
from ..models import Evaluation, Sweep, TrainingJob, TrainingMetric
from .points import point_label


@dataclass(frozen=True)
class Metric:
    label: str
    higher_is_better: bool


METRICS = {
    "lc_win_rate": Metric("LC win rate against the base", True),
    "win_rate": Metric("Win rate against the base", True),
    "heldout_accuracy": Metric("Held-out preference accuracy", True),
    "implicit_accuracy": Metric("Held-out implicit-reward accuracy", True),
    "final_margin": Metric("Final reward margin", True),
    "final_loss": Metric("Final loss", False),
    "kl": Metric("KL from the base (sampled)", False),
}
CURVES = ("loss", "rewards/margins", "rewards/accuracies", "kl_estimate", "logps/chosen", "answer_tokens")


def _latest_reports(jobs: list[TrainingJob]) -> dict[int, dict]:
    reports: dict[int, dict] = {}
    finished = Evaluation.objects.filter(job__in=jobs, state=Evaluation.State.SUCCEEDED, baseline_job__isnull=True)
    for job_id, report in finished.order_by("pk").values_list("job_id", "report"):
        reports[job_id] = report  # the newest wins
    return reports


def _last_values(jobs: list[TrainingJob]) -> dict[int, dict]:
    """Each run's last logged step (one row per run, not its whole history)."""
    last_step = TrainingMetric.objects.filter(job=OuterRef("job")).order_by("-step").values("step")[:1]
    rows = TrainingMetric.objects.filter(job__in=jobs, step=Subquery(last_step)).values_list("job_id", "values")
    return dict(rows)


def run_row(job: TrainingJob, last: dict, report: dict | None) -> dict:
    ev = job.evaluation or {}
    if ev.get("kind") == "reward":  # a reward model's held-out accuracy is its own, beside no base model
        ev = {**ev, "tuned": {"accuracy": ev.get("accuracy"), "ci95": ev.get("ci95")}}
    wall = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
    kl_sampled = (ev.get("kl") or {}).get("mean")
    values = {
        "lc_win_rate": (report or {}).get("lc_win_rate"),
        "win_rate": (report or {}).get("win_rate"),
        "heldout_accuracy": (ev.get("tuned") or {}).get("accuracy"),
        "implicit_accuracy": (ev.get("implicit_reward") or {}).get("accuracy"),
        "final_margin": last.get("rewards/margins", last.get("margin")),  # a reward model logs "margin"
        "final_loss": last.get("loss"),
        "kl": kl_sampled,
    }
    intervals = {
        "lc_win_rate": (report or {}).get("lc_win_rate_ci95"),
        "win_rate": (report or {}).get("win_rate_ci95"),
        "heldout_accuracy": (ev.get("tuned") or {}).get("ci95"),
        "implicit_accuracy": (ev.get("implicit_reward") or {}).get("ci95"),
        "kl": (ev.get("kl") or {}).get("ci95"),
    }
    return {
        "job": job,
        "id": str(job.public_id),
        "label": point_label(job.sweep_point) or str(job.public_id)[:8],
        "point": job.sweep_point,
        "state": job.state,
        "step": job.step,
        "values": values,
        "intervals": intervals,
        "final_accuracy": last.get("rewards/accuracies"),
        "kl_estimate": last.get("kl_estimate"),
        "mean_length_change": (report or {}).get("mean_length_change"),
        "tokens_per_s": (job.summary or {}).get("tokens_per_s"),
        "wall_seconds": wall,
        "alarms": job.alarms,
        "stop_reason": job.stop_reason,
        "beta": JobSpec.from_dict(job.spec).resolved_beta(),
        "kl_for_plot": kl_sampled if kl_sampled is not None else last.get("kl_estimate"),
    }


def default_metric(rows: list[dict]) -> str:
    """LC win rate when every run with a model has one, else held-out preference accuracy."""
    with_model = [r for r in rows if r["state"] in TrainingJob.HAS_MODEL]
    if with_model and all(r["values"]["lc_win_rate"] is not None for r in with_model):
        return "lc_win_rate"
    return "heldout_accuracy"


def sweep_comparison(sweep: Sweep, metric: str = "") -> dict:
    """Rows in rank order by ``metric`` (the sweep's, else the default), runs without the figure last."""
    jobs = list(sweep.jobs.order_by("pk"))
    reports, last = _latest_reports(jobs), _last_values(jobs)
    rows = [run_row(job, last.get(job.pk, {}), reports.get(job.pk)) for job in jobs]
    metric = metric if metric in METRICS else sweep.metric if sweep.metric in METRICS else default_metric(rows)
    better = METRICS[metric].higher_is_better
    ranked = sorted(
        (r for r in rows if r["values"][metric] is not None and r["state"] in TrainingJob.HAS_MODEL),
        key=lambda r: -r["values"][metric] if better else r["values"][metric],
    )  # fmt: skip
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    unranked = [r for r in rows if "rank" not in r]
    best = ranked[0] if ranked else None
    return {
        "metric": metric,
        "metric_label": METRICS[metric].label,
        "metrics": {k: m.label for k, m in METRICS.items()},
        "rows": ranked + unranked,
        "best": best,
        "best_value": best["values"][metric] if best else None,
        "best_interval": best["intervals"].get(metric) if best else None,
        "runner_up_value": ranked[1]["values"][metric] if len(ranked) > 1 else None,
        "promoted": str(sweep.promoted_job.public_id) if sweep.promoted_job_id else None,
    }


def sweep_curves(sweep: Sweep, comparison: dict | None = None) -> dict:
    """Each run's logged series that the comparison page overlays, and the β–KL points (from ``comparison``, the
    page's own when it has one)."""
    jobs = list(sweep.jobs.order_by("pk"))
    series: dict[int, dict[str, list]] = {job.pk: {} for job in jobs}
    for job_id, step, values in (
        TrainingMetric.objects.filter(job__in=jobs).order_by("step").values_list("job_id", "step", "values")
    ):
        for name in CURVES:
            if name in values:
                series[job_id].setdefault(name, []).append([step, values[name]])
    comparison = comparison or sweep_comparison(sweep)
    return {
        "runs": [{"id": str(job.public_id), "label": point_label(job.sweep_point), "state": job.state,
                  "series": series[job.pk]} for job in jobs],
        "beta_kl": [{"id": r["id"], "label": r["label"], "beta": r["beta"], "kl": r["kl_for_plot"]}
                    for r in comparison["rows"] if r["kl_for_plot"] is not None],
        "state": sweep.state,
        "live": sweep.state == Sweep.State.RUNNING,
    }  # fmt: skip
