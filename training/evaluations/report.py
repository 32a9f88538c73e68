"""An evaluation's report, read from its rows: the judge's verdicts on the A/B pairs (both orders), the answers'
lengths, the prompts' metadata and people's labels on the same pairs. The figures are stats.py's.

Per prompt, the preference for the tuned model: 1 when the judge prefers its answer, 0 for the baseline's, 0.5 for
a tie; the mean of the two orders when both were judged (a judge that flips with the order contributes a tie); 0.5
for identical answers, which nobody judges. A prompt none of whose orders parsed is left out (counted).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from annotation.models import Label
from annotation.quality.two_raters import kappa_with_ci
from generation.models import Candidate, Prompt
from generation.plan import slots
from judging.models import Verdict
from judging.selectors import judge_audit

from ..models import Evaluation
from .stats import bootstrap_mean, summarise

METADATA_KEYS = ("task_type", "category", "task", "type", "difficulty")
CONSISTENT_AT = 0.6  # below this share of swap-consistent pairs a judge is mostly reading the order, not the answers
SHOWN_CHARS = 4000
HUMAN_VALUE = {"A": 1.0, "B": 0.0, "tie": 0.5, "both_bad": 0.5}


def _tuned_terms(winner: str, tuned_is_a: bool) -> float:
    if winner == "tie":
        return 0.5
    return 1.0 if (winner == "A") == tuned_is_a else 0.0


def _order_word(orders: dict[str, str], tuned_is_a: bool, *, tuned_first: bool) -> str:
    """The winner, in tuned/baseline words, of the order that showed the tuned (or the baseline) answer first: the
    pair's "ab" order shows its A first, and the tuned answer is A or B depending on how the pair was made."""
    order = "ab" if tuned_first == bool(tuned_is_a) else "ba"
    return _winner_word(_tuned_terms(orders[order], tuned_is_a)) if order in orders else ""


def _winner_word(value: float | None) -> str:
    if value is None:
        return ""
    return "tuned" if value > 0.5 else "baseline" if value < 0.5 else "tie"


def _audit(evaluation: Evaluation, both: list[tuple[str, str]], first_picks: int, decisive: int) -> dict:
    consistency = sum(1 for ab, ba in both if ab == ba) / len(both) if both else None
    humans = (
        judge_audit(evaluation.judge, evaluation.project)
        if evaluation.judge
        else {"kappa": None, "n": 0, "ci95": [None, None]}
    )
    reasons = []
    if consistency is not None and consistency < CONSISTENT_AT:
        reasons.append(f"it names the same winner in both orders on only {100 * consistency:.0f}% of these pairs")
    if humans["n"] and (humans["ci95"][0] is None or humans["ci95"][0] <= 0):
        reasons.append(f"its agreement with the project's people (κ {humans['kappa'] or 0:.2f}, n {humans['n']}) "
                       "is not above chance")  # fmt: skip
    status = "chance" if reasons else ("trusted" if humans["n"] else "unaudited")
    return {
        "position_consistency": consistency,
        "pairs_both_orders": len(both),
        "first_slot_pick_rate": first_picks / decisive if decisive else None,
        "agreement_with_people": humans,
        "status": status,
        "reasons": reasons,
        "text": {
            "chance": "This judge audits no better than chance here (" + "; ".join(reasons) + "): its win rate "
                      "shows the evaluation ran, not whether the model improved.",
            "unaudited": "This judge has no human labels of the project to be checked against: judge some "
                         "labelled pairs with it to audit it.",
            "trusted": "This judge agrees with the project's people above chance and reads answers, not their order.",
        }[status],
    }  # fmt: skip


def _group_key(metadata: dict, key: str | None) -> str | None:
    if key is None:
        return None
    value = metadata.get(key)
    return str(value)[:100] if value not in (None, "") else "(none)"


def _human(evaluation: Evaluation, links: list, judge_winner: dict[int, str]) -> dict:
    """People's A/B labels on the evaluation's pairs, in tuned terms, and their agreement with the judge."""
    pair_ids = [p for _, p, _ in links]
    tuned_is_a = {p: a for _, p, a in links}
    by_pair: dict[int, list[str]] = defaultdict(list)
    labels = Label.objects.filter(pair_id__in=pair_ids).exclude(assignment__kind__in=["repeat", "practice", "gold"])
    for pair_id, choice in labels.values_list("pair_id", "choice"):
        by_pair[pair_id].append(choice)
    if not by_pair:
        return {"n": 0, "labels": 0, "sent": evaluation.sent_to_people_at is not None}
    prefs = []
    majority, judged = [], []
    for pair_id, choices in by_pair.items():
        values = [_tuned_terms("tie" if c == "both_bad" else c, tuned_is_a[pair_id]) for c in choices]
        pref = float(np.mean(values))
        prefs.append(pref)
        if pair_id in judge_winner:
            majority.append(_winner_word(pref))
            judged.append(judge_winner[pair_id])
    word_labels = ["tuned", "baseline", "tie"]
    return {
        "n": len(prefs),
        "labels": sum(len(c) for c in by_pair.values()),
        "sent": evaluation.sent_to_people_at is not None,
        "win_rate": float(np.mean(prefs)),
        "win_rate_ci95": bootstrap_mean(prefs),
        "agreement_with_judge": kappa_with_ci(judged, majority, labels=word_labels),
    }


def evaluation_answers(evaluation: Evaluation) -> dict[int, tuple[Candidate, Candidate]]:
    """prompt id -> (tuned answer, baseline answer), over the prompts both runs answered."""
    if evaluation.tuned_run is None:
        return {}
    key = slots(evaluation.plan)[0].key
    prompt_ids = evaluation.tuned_run.prompt_ids
    found: dict[int, dict[int, Candidate]] = {}
    for c in Candidate.objects.filter(prompt_id__in=prompt_ids, slot_key=key, generator_id__in=[
            evaluation.tuned_generator_id, evaluation.baseline_generator_id]):  # fmt: skip
        found.setdefault(c.prompt_id, {})[c.generator_id] = c
    return {p: (found[p][evaluation.tuned_generator_id], found[p][evaluation.baseline_generator_id])
            for p in prompt_ids if len(found.get(p, {})) == 2}  # fmt: skip


def evaluation_report(evaluation: Evaluation) -> dict:
    links = evaluation.pair_ids
    tuned_is_a = {p: a for _, p, a in links}
    prompt_of = {p: prompt_id for prompt_id, p, _ in links}
    run = evaluation.judge_run
    verdicts: dict[int, dict[str, str]] = defaultdict(dict)
    first_picks = decisive = 0
    if run is not None:
        rows = Verdict.objects.filter(judge=run.judge_id, prompt_version=run.prompt_version_id, pair_id__in=list(
            tuned_is_a), status=Verdict.Status.OK).values_list("pair_id", "order", "winner", "winner_slot")  # fmt: skip
        for pair_id, order, winner, slot in rows:
            verdicts[pair_id][order] = winner
            if slot in ("first", "second"):
                decisive += 1
                first_picks += slot == "first"
    answers = evaluation_answers(evaluation)
    prompts = Prompt.objects.in_bulk(list(answers))
    key = next((k for k in METADATA_KEYS if any(k in prompts[p].metadata for p in answers)), None)
    pair_of = {prompt_id: p for p, prompt_id in prompt_of.items()}
    rows, prefs, len_t, len_b, groups = [], [], [], [], defaultdict(list)
    unjudged = 0
    judge_winner: dict[int, str] = {}
    for prompt_id, (tuned, baseline) in answers.items():
        pair_id = pair_of.get(prompt_id)
        orders = verdicts.get(pair_id, {}) if pair_id else {}
        if pair_id is None and prompt_id in evaluation.identical:
            pref = 0.5
        elif orders:
            pref = float(np.mean([_tuned_terms(w, tuned_is_a[pair_id]) for w in orders.values()]))
            judge_winner[pair_id] = _winner_word(pref)
        else:
            unjudged += 1
            pref = None
        prompt = prompts[prompt_id]
        row = {
            "prompt": prompt.text[:SHOWN_CHARS], "tuned": tuned.text[:SHOWN_CHARS],
            "baseline": baseline.text[:SHOWN_CHARS], "group": _group_key(prompt.metadata, key),
            "tuned_first": _order_word(orders, pair_id and tuned_is_a[pair_id], tuned_first=True),
            "baseline_first": _order_word(orders, pair_id and tuned_is_a[pair_id], tuned_first=False),
            "identical": prompt_id in evaluation.identical, "preference": pref, "winner": _winner_word(pref),
            "tuned_chars": len(tuned.text), "baseline_chars": len(baseline.text),
        }  # fmt: skip
        rows.append(row)
        if pref is not None:
            prefs.append(pref)
            len_t.append(len(tuned.text))
            len_b.append(len(baseline.text))
            groups[row["group"]].append(pref)
    both = [(o["ab"], o["ba"]) for o in verdicts.values() if "ab" in o and "ba" in o]
    report = summarise(prefs, len_t, len_b)
    report.update({
        "prompts": len(answers),
        "unjudged": unjudged,
        "identical": len(evaluation.identical),
        "judge": {"name": evaluation.judge.name if evaluation.judge else None,
                  "model": evaluation.judge.model if evaluation.judge else None,
                  "prompt_version": run.prompt_version.version if run else None},
        "tuned": evaluation.tuned_generator.name if evaluation.tuned_generator else None,
        "baseline": evaluation.baseline_generator.name if evaluation.baseline_generator else None,
        "plan": evaluation.plan,
        "lc_method": "AlpacaEval 2 GLM (preference ~ intercept + tanh(standardised length difference)), reported "
                     "with the length term zeroed; without the instruction-difficulty term, which a two-model "
                     "comparison on a custom prompt set cannot fit.",
        "audit": _audit(evaluation, both, first_picks, decisive),
        "by_group": {"key": key, "groups": sorted(
            ({"group": g, "n": len(v), "win_rate": float(np.mean(v)), "win_rate_ci95": bootstrap_mean(v)}
             for g, v in groups.items()), key=lambda g: -g["win_rate"])} if key else None,
        "human": _human(evaluation, links, judge_winner),
        "rows": rows,
    })  # fmt: skip
    if report["audit"]["status"] == "chance":
        report["verdict"] = "judge_at_chance"
        report["verdict_text"] = "Not a result: " + report["audit"]["text"] + " (" + report["verdict_text"] + ")"
    return report
