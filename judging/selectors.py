"""Reads for judging: runs a user may see, a run's quality report, and per-pair aggregates across judges."""

from __future__ import annotations

from collections import Counter, defaultdict

from django.db.models import Q

from annotation.models import Pair, Project
from annotation.quality.two_raters import kappa_with_ci
from annotation.selectors import pair_consensus

from .models import JudgeConfig, JudgeRun, PairJudgement, PromptVersion, Verdict

JUDGE_LABELS = ["A", "B", "tie"]


def judges_for(project: Project):
    """The project's own judges and the ones admins shared with every project."""
    return JudgeConfig.objects.filter(Q(project=project) | Q(project__isnull=True)).order_by("name")


def runs_of(project: Project):
    return JudgeRun.objects.filter(project=project).select_related("judge", "prompt_version", "created_by")[:50]


def prompt_current(judge: JudgeConfig) -> PromptVersion | None:
    return PromptVersion.objects.filter(judge=judge).order_by("-version").first()


VERDICT_FIELDS = ("pair_id", "pair__external_id", "order", "status", "winner", "winner_slot", "score_a", "score_b",
                  "confidence", "rationale", "raw", "tokens_in", "tokens_out", "from_cache", "created_at")  # fmt: skip


def run_verdicts(run: JudgeRun):
    """The verdicts a run's report reads (its judge and prompt version on its pairs, those found from earlier runs
    included), as dicts by pair and order."""
    return (
        Verdict.objects.filter(judge=run.judge_id, prompt_version=run.prompt_version_id, pair_id__in=run.pair_ids)
        .order_by("pair_id", "order")
        .values(*VERDICT_FIELDS)
    )


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def run_report(run: JudgeRun, *, n_boot: int = 500) -> dict:
    """How far to trust this judge on this run's pairs: position and length bias, flips, ties, agreement with the
    human consensus and with calibration answers (Cohen's kappa with n and a 95% CI), cost and failures."""
    rows = list(
        Verdict.objects.filter(
            judge=run.judge_id, prompt_version=run.prompt_version_id, pair_id__in=run.pair_ids
        ).values_list(
            "pair_id", "order", "status", "winner", "winner_slot", "pair__response_a_chars", "pair__response_b_chars"
        )
    )
    ok = [r for r in rows if r[2] == Verdict.Status.OK]
    decisive = [r for r in ok if r[4] in ("first", "second")]
    differ = [r for r in decisive if r[5] != r[6]]
    longer = sum(1 for r in differ if (r[3] == "A") == (r[5] > r[6]))
    by_pair: dict[int, dict[str, str]] = defaultdict(dict)
    for pair_id, order, _, winner, *_ in ok:
        by_pair[pair_id][order] = winner
    both = [w for w in by_pair.values() if len(w) == 2]
    judged = dict(
        PairJudgement.objects.filter(
            judge=run.judge_id, prompt_version=run.prompt_version_id, pair_id__in=run.pair_ids
        ).values_list("pair_id", "winner")
    )
    human_pairs = _with_humans(judged, run.project)
    gold = dict(
        Pair.objects.filter(pk__in=list(judged), project=run.project).exclude(gold="").values_list("pk", "gold")
    )
    gold_pairs = [(judged[p], "tie" if g == "both_bad" else g) for p, g in gold.items()]
    pairs_done = len(by_pair)
    return {
        "verdicts": len(rows),
        "parsed": len(ok),
        "unparseable": len(rows) - len(ok),
        "first_slot_pick_rate": _rate(sum(1 for r in decisive if r[4] == "first"), len(decisive)),
        "tie_rate": _rate(sum(1 for r in ok if r[3] == "tie"), len(ok)),
        "longer_pick_rate": _rate(longer, len(differ)),
        "pairs_both_orders": len(both),
        "flip_rate": _rate(sum(1 for w in both if w["ab"] != w["ba"]), len(both)),
        "agreement_with_humans": kappa_with_ci(
            [j for j, _ in human_pairs], [h for _, h in human_pairs], labels=JUDGE_LABELS, n_boot=n_boot
        ),
        "agreement_with_gold": kappa_with_ci(
            [j for j, _ in gold_pairs], [g for _, g in gold_pairs], labels=JUDGE_LABELS, n_boot=n_boot
        ),
        "api_calls": run.api_calls,
        "cache_hits": run.cache_hits,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "cost_usd": float(run.cost_usd),
        "cost_per_1000_pairs": float(run.cost_usd) * 1000 / pairs_done if pairs_done else None,
    }


def _with_humans(judged: dict[int, str], project: Project) -> list[tuple[str, str]]:
    """(judge's winner, human majority) for every judged pair people have a majority on."""
    humans = {c["pair_id"]: c["majority"] for c in pair_consensus(project) if c["pair_id"] in judged}
    return [(judged[p], "tie" if m == "no_preference" else m) for p, m in humans.items() if m != "none"]


def judge_audit(judge: JudgeConfig, project: Project, *, n_boot: int = 500) -> dict:
    """How far this judge (its current prompt) agrees with the project's people on the pairs both judged: Cohen's
    kappa with n and a 95% interval (n 0 when the judge has not judged labelled pairs of the project)."""
    judged = dict(
        PairJudgement.objects.filter(judge=judge, prompt_version=prompt_current(judge), pair__project=project)
        .values_list("pair_id", "winner")
    )  # fmt: skip
    pairs = _with_humans(judged, project)
    return kappa_with_ci([j for j, _ in pairs], [h for _, h in pairs], labels=JUDGE_LABELS, n_boot=n_boot)


def pair_judge_aggregate(project: Project) -> dict[int, dict]:
    """Per pair, over every LLM judge's latest prompt version that judged it (reward models' margins are on another
    scale: composites stack them): the judges' majority winner (tie when level), the mean swap-consistent margin,
    how many judges and how many were swap-consistent. Curation reads this next to the human consensus."""
    latest = {
        judge_id: version_id
        for judge_id, version_id in PromptVersion.objects.filter(
            judgements__pair__project=project, judge__kind=JudgeConfig.Kind.LLM
        )
        .order_by("judge_id", "version")
        .values_list("judge_id", "pk")
    }
    rows = PairJudgement.objects.filter(pair__project=project, prompt_version_id__in=list(latest.values()))
    per_pair: dict[int, list[tuple[str, float, bool]]] = defaultdict(list)
    for pair_id, winner, margin, consistent in rows.values_list("pair_id", "winner", "margin", "consistent"):
        per_pair[pair_id].append((winner, margin, consistent))
    out = {}
    for pair_id, items in per_pair.items():
        votes = Counter(w for w, _, _ in items).most_common()
        winner = votes[0][0] if len(votes) == 1 or votes[0][1] > votes[1][1] else "tie"
        out[pair_id] = {
            "judges": len(items),
            "winner": winner,
            "mean_margin": sum(m for _, m, _ in items) / len(items),
            "consistent_judges": sum(1 for *_, c in items if c),
        }
    return out
