"""Did each round help? The round-over-round report: per round, the judged win rate and length-controlled win rate
against the base model and against the previous round (with their intervals), held-out preference accuracy, mean
answer length, KL, the funnel (prompts -> candidates -> pairs -> labelled -> rows -> steps), cost and GPU time; and
the warning the seeds name for iterative DPO: answers growing longer faster than the length-controlled win rate
improves (length exploitation, RLHFlow's answers grew 84% in three rounds)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Q

from annotation.models import Pair
from generation.models import Candidate, GenerationRun
from generation.selectors import flagged_q

from ..models import Campaign, CampaignRound, Evaluation, TrainingJob, TrainingMetric

# Warn when answers grew by more than this share of their length beyond what the LC win rate gained (relative)
LENGTH_SLACK = 0.10


def _seconds(work) -> float:
    if work is None or work.started_at is None:
        return 0.0
    return ((work.finished_at or work.started_at) - work.started_at).total_seconds()


def _versus(evaluation: Evaluation | None) -> dict | None:
    if evaluation is None or evaluation.state != Evaluation.State.SUCCEEDED:
        return None
    r = evaluation.report
    return {key: r.get(key) for key in ("n", "win_rate", "win_rate_ci95", "lc_win_rate", "lc_win_rate_ci95",
                                        "mean_length_candidate", "mean_length_change", "verdict")}  # fmt: skip


def _evaluation_runs(evaluation: Evaluation | None) -> list:
    if evaluation is None:
        return []
    return [r for r in (evaluation.tuned_run, evaluation.baseline_run, evaluation.judge_run) if r is not None]


def _round_runs(round_: CampaignRound) -> list:
    """Every run the round paid for: its generation and judge runs, and its evaluations' runs."""
    runs = [r for r in (round_.generation_run, round_.judge_run) if r is not None]
    for evaluation in (round_.eval_base, round_.eval_previous):
        runs += _evaluation_runs(evaluation)
    return runs


def round_cost(round_: CampaignRound) -> Decimal:
    return sum((run.cost_usd for run in _round_runs(round_)), Decimal(0))


def campaign_cost(campaign: Campaign) -> Decimal:
    return sum((round_cost(r) for r in campaign.round_set.all()), Decimal(0))


def _kl(job: TrainingJob) -> float | None:
    """The sampled KL from the base on held-out prompts (the runner's), else the last logged KL estimate."""
    sampled = ((job.evaluation or {}).get("kl") or {}).get("mean")
    if sampled is not None:
        return sampled
    last = TrainingMetric.objects.filter(job=job).order_by("-step").values_list("values", flat=True).first() or {}
    return last.get("kl_estimate")


def funnel(round_: CampaignRound) -> dict:
    run = round_.generation_run
    candidates = (Candidate.objects.filter(run=run) if run else Candidate.objects.none()).aggregate(
        n=Count("pk"), flagged=Count("pk", filter=flagged_q())
    )
    pairs = Pair.objects.filter(pk__in=round_.pair_ids)
    labelled = pairs.filter(Q(label_count__gt=0) | Q(judgements__isnull=False)).distinct().count()
    export, job = round_.export, round_.job
    return {
        "prompts": len(round_.campaign.batches[round_.number - 1]),
        "candidates": candidates["n"],
        "flagged": candidates["flagged"],
        "pairs": len(round_.pair_ids),
        "labelled_by_people": pairs.filter(label_count__gt=0).count(),
        "labelled": labelled,
        "rows_train": export.rows_train if export else None,
        "rows_test": export.rows_test if export else None,
        "steps": job.step if job else None,
    }


def round_report(round_: CampaignRound) -> dict:
    job = round_.job
    evaluation = (job.evaluation or {}) if job else {}
    base = _versus(round_.eval_base)
    gpu = _seconds(job) + sum(_seconds(r) for r in _round_runs(round_)
                              if isinstance(r, GenerationRun) and r.generator.kind == "local")  # fmt: skip
    return {
        "round": round_.number,
        "job": str(job.public_id) if job else None,
        "model": round_.generator.name if round_.generator else None,
        "vs_base": base,
        "vs_previous": _versus(round_.eval_previous),
        "heldout_accuracy": (evaluation.get("tuned") or {}).get("accuracy"),
        "heldout_accuracy_ci95": (evaluation.get("tuned") or {}).get("ci95"),
        "mean_answer_chars": (base or {}).get("mean_length_candidate"),
        "kl": _kl(job) if job else None,
        "funnel": funnel(round_),
        "cost_usd": float(round_cost(round_)),
        "gpu_seconds": gpu,
    }


def length_warnings(rows: list[dict]) -> list[str]:
    """Rounds whose answers grew (relative to the round before; the base for round 1) by more than LENGTH_SLACK
    beyond what the LC win rate against the base gained (relative to the round before; 0.5, parity, for round 1)."""
    warnings = []
    before_len, before_lc = None, 0.5
    for row in rows:
        versus = row.get("vs_base") or {}
        length, lc = versus.get("mean_length_candidate"), versus.get("lc_win_rate")
        if length is None or lc is None:
            continue
        if before_len is None and versus.get("mean_length_change") is not None:
            before_len = length - versus["mean_length_change"]  # the base model's mean answer length
        if before_len:
            grew, gained = length / before_len - 1, lc / before_lc - 1 if before_lc else 0.0
            if grew > max(gained, 0.0) + LENGTH_SLACK:
                warnings.append(f"Round {row['round']}: answers grew {grew:+.0%} while the LC win rate against the "
                                f"base moved {gained:+.0%}: the model may be winning on length, not quality "
                                "(length exploitation).")  # fmt: skip
        before_len, before_lc = length, lc
    return warnings


def campaign_report(campaign: Campaign) -> dict:
    """Every finished round's report, the length warnings and the series for the chart over rounds."""
    rounds = list(campaign.round_set.filter(state=CampaignRound.State.SUCCEEDED).order_by("number"))
    rows = [r.report for r in rounds if r.report]

    def series(key: str, versus: str = "vs_base") -> list:
        return [(row.get(versus) or {}).get(key) for row in rows]

    return {
        "rows": rows,
        "warnings": length_warnings(rows),
        "chart": {
            "rounds": [row["round"] for row in rows],
            "win_rate_vs_base": series("win_rate"),
            "lc_win_rate_vs_base": series("lc_win_rate"),
            "win_rate_vs_previous": series("win_rate", "vs_previous"),
            "mean_answer_chars": [row.get("mean_answer_chars") for row in rows],
            "kl": [row.get("kl") for row in rows],
        },
        "cost_usd": float(campaign_cost(campaign)),
        "gpu_seconds": sum(row.get("gpu_seconds") or 0 for row in rows),
    }
