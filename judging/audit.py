"""How far to trust a scorer (an LLM judge or a reward model) on this project: its accuracy on the pairs people
preferred one response of, beside the two baselines any scorer must beat, "pick the longer" and "pick A", and its
agreement with the annotators.

- Held out: a reward model's training pairs (JudgeConfig.trained_on) are left out.
- Accuracy is RewardBench's (the scorer picks the response people chose), a scorer's tie counting half, with n and
  a Wilson 95% interval (statsmodels); the length baseline counts equal lengths half.
- Slices: by import file, by prompt metadata keys with a few values, and by each of the project's criteria
  (against people's majority on that criterion, where they gave one).
- Cohen's kappa with the human majority over A / B / tie, as the judge pages report it.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from django.db.models import Q
from statsmodels.stats.proportion import proportion_confint

from annotation.models import Assignment, Label, Membership, Pair, Project
from annotation.quality.two_raters import kappa_with_ci
from annotation.selectors import pair_consensus

from .models import JudgeConfig, PairJudgement
from .selectors import JUDGE_LABELS, prompt_current

MAX_SLICE_VALUES = 12  # at most this many values, and two pairs a value on average, make a metadata slice
MIN_PAIRS_WARNING = 30


def accuracy(hits: float, n: int) -> dict:
    if not n:
        return {"n": 0, "accuracy": None, "ci95": [None, None]}
    lo, hi = proportion_confint(hits, n, alpha=0.05, method="wilson")
    return {"n": n, "accuracy": hits / n, "ci95": [float(lo), float(hi)]}


def _hit(pick: str, truth: str) -> float:
    return 0.5 if pick == "tie" else float(pick == truth)


def _score(rows: list[dict]) -> dict:
    """Scorer, length and position accuracy over rows {scorer, human, longer}."""
    return {
        "scorer": accuracy(sum(_hit(r["scorer"], r["human"]) for r in rows), len(rows)),
        "longer": accuracy(sum(_hit(r["longer"], r["human"]) for r in rows), len(rows)),
        "position_a": accuracy(sum(r["human"] == "A" for r in rows), len(rows)),
    }


def _criterion_majorities(project: Project, pair_ids) -> dict[str, dict[int, str]]:
    """Per criterion, per pair: people's majority (A or B) on it, where one side has more votes. The labels the
    consensus counts: imported ones and regular ones (no practice, calibration or repeat), paused annotators out."""
    votes: dict[str, dict[int, Counter]] = defaultdict(lambda: defaultdict(Counter))
    paused = Membership.objects.filter(project=project, paused_at__isnull=False).values("user_id")
    labels = (
        Label.objects.filter(project=project, pair_id__in=pair_ids)
        .filter(Q(source=Label.Source.EXTERNAL) | Q(assignment__kind=Assignment.Kind.REGULAR))
        .filter(Q(annotator__isnull=True) | ~Q(annotator_id__in=paused))
        .exclude(criteria={})
    )
    for pair_id, criteria in labels.values_list("pair_id", "criteria").iterator():
        for name, choice in (criteria or {}).items():
            if choice in ("A", "B"):
                votes[name][pair_id][choice] += 1
    return {name: {p: c.most_common(1)[0][0] for p, c in per_pair.items() if c["A"] != c["B"]}
            for name, per_pair in votes.items()}  # fmt: skip


def scorer_audit(judge: JudgeConfig, project: Project, *, n_boot: int = 500) -> dict:
    held_out = set(judge.trained_on or [])
    judged = {
        p: w
        for p, w in PairJudgement.objects.filter(judge=judge, prompt_version=prompt_current(judge),
                                                 pair__project=project).values_list("pair_id", "winner")
        if p not in held_out
    }  # fmt: skip
    humans = {c["pair_id"]: c["majority"] for c in pair_consensus(project) if c["pair_id"] in judged}
    humans = {p: "tie" if m == "no_preference" else m for p, m in humans.items() if m != "none"}
    facts = {
        pk: (a_chars, b_chars, batch or "", metadata or {})
        for pk, a_chars, b_chars, batch, metadata in Pair.objects.filter(pk__in=list(humans)).values_list(
            "pk", "response_a_chars", "response_b_chars", "import_batch__filename", "metadata"
        )
    }
    rows = []
    for pair_id, human in humans.items():
        if human not in ("A", "B"):
            continue
        a_chars, b_chars, batch, metadata = facts[pair_id]
        longer = "A" if a_chars > b_chars else "B" if b_chars > a_chars else "tie"
        rows.append({"pair": pair_id, "scorer": judged[pair_id], "human": human, "longer": longer, "file": batch,
                     "metadata": metadata})  # fmt: skip
    overall = _score(rows)
    slices = []
    for name, key in (("import file", lambda r: r["file"] or "(created in the app)"),):
        slices += _slices(name, rows, key)
    keys = Counter(k for r in rows for k, v in r["metadata"].items() if isinstance(v, (str, int, bool)))
    for meta_key in sorted(keys):
        values = {str(r["metadata"].get(meta_key)) for r in rows if meta_key in r["metadata"]}
        if 1 < len(values) <= min(MAX_SLICE_VALUES, len(rows) // 2):  # else an id, not a slice
            slices += _slices(f"metadata {meta_key}", [r for r in rows if meta_key in r["metadata"]],
                              lambda r, k=meta_key: str(r["metadata"][k]))  # fmt: skip
    criteria = []
    majorities = _criterion_majorities(project, list(judged))
    for name in project.criteria or []:
        name = name if isinstance(name, str) else str(name.get("name", ""))
        per_pair = majorities.get(name, {})
        picked = [(judged[p], human) for p, human in per_pair.items()]
        criteria.append({"criterion": name, **accuracy(sum(_hit(s, h) for s, h in picked), len(picked))})
    decisive = [r for r in rows if r["scorer"] in ("A", "B") and r["longer"] != "tie"]
    kappa_pairs = [(judged[p], h) for p, h in humans.items()]
    report = {
        "judge": judge.name,
        "kind": judge.kind,
        "pairs_scored": len(judged),
        "held_out_excluded": len(held_out),
        "pairs_with_human_majority": len(rows),
        **overall,
        "scorer_ties": sum(r["scorer"] == "tie" for r in rows),
        "longer_pick_rate": accuracy(sum(r["scorer"] == r["longer"] for r in decisive), len(decisive))["accuracy"],
        "kappa": kappa_with_ci(
            [j for j, _ in kappa_pairs], [h for _, h in kappa_pairs], labels=JUDGE_LABELS, n_boot=n_boot
        ),  # fmt: skip
        "slices": slices,
        "criteria": criteria,
    }
    report["warnings"] = _warnings(report)
    return report


def _slices(name: str, rows: list[dict], key) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    if len(groups) < 2:
        return []
    return [{"slice": name, "value": value, **_score(group)} for value, group in sorted(groups.items())]


def _warnings(report: dict) -> list[str]:
    scorer, longer = report["scorer"], report["longer"]
    out = []
    if not scorer["n"]:
        return ["No pair this scorer scored has a human majority yet: label some pairs (or score labelled ones)."]
    if scorer["accuracy"] <= longer["accuracy"]:
        out.append(f"No better than picking the longer response: {scorer['accuracy']:.0%} against "
                   f"{longer['accuracy']:.0%} on the same {scorer['n']} pairs.")  # fmt: skip
    elif scorer["ci95"][0] <= longer["accuracy"]:
        out.append(f"Not clearly better than picking the longer response: the 95% interval of its accuracy "
                   f"({scorer['ci95'][0]:.0%}–{scorer['ci95'][1]:.0%}) reaches the length baseline "
                   f"({longer['accuracy']:.0%}).")  # fmt: skip
    if scorer["accuracy"] <= report["position_a"]["accuracy"]:
        out.append(f"No better than always picking A ({report['position_a']['accuracy']:.0%}).")
    if scorer["n"] < MIN_PAIRS_WARNING:
        out.append(f"Only {scorer['n']} labelled pairs: the interval is wide; label more before trusting it.")
    return out
