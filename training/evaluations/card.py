"""An evaluation's report as a model-card section (Markdown), for the job page's model card and the API."""

from __future__ import annotations

from ..models import Evaluation


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _ci(ci) -> str:
    return f" (95% CI {_pct(ci[0])}–{_pct(ci[1])})" if ci and ci[0] is not None else ""


def evaluation_markdown(evaluation: Evaluation) -> str:
    r = evaluation.report
    if not r:
        return ""
    audit = r["audit"]
    lines = [
        f"## Win rate against {r['baseline']} ({r['n']} held-out prompts, judge {r['judge']['name']})",
        "",
        f"**{r['verdict_text']}**",
        "",
        "| | value |",
        "|---|---|",
        f"| win rate (ties count half) | {_pct(r['win_rate'])}{_ci(r['win_rate_ci95'])} |",
        f"| length-controlled win rate | {_pct(r['lc_win_rate'])}{_ci(r['lc_win_rate_ci95'])} |",
        f"| wins / ties / losses | {r['wins']} / {r['ties']} / {r['losses']} |",
        f"| judge position consistency | {_pct(audit['position_consistency'])} of {audit['pairs_both_orders']} "
        "pairs |",
        f"| mean length change (characters) | {r['mean_length_change']:+.0f} |" if r["mean_length_change"] is not None
        else "| mean length change | — |",
    ]  # fmt: skip
    if r["lc_gap_warning"]:
        lines += ["", "Raw and length-controlled win rates differ by more than 10 points: length sways this judge."]
    lines += ["", audit["text"], "", f"Length control: {r['lc_method']}"]
    human = r.get("human") or {}
    if human.get("n"):
        kappa = human["agreement_with_judge"]["kappa"]
        lines += ["", f"People ({human['labels']} labels on {human['n']} pairs): win rate {_pct(human['win_rate'])}"
                      f"{_ci(human['win_rate_ci95'])}; agreement with the judge κ "
                      f"{'—' if kappa is None else f'{kappa:.2f}'}."]  # fmt: skip
    return "\n".join(lines) + "\n"
