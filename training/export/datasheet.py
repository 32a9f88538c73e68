"""The human-readable datasheet of an export (the JSON one holds the same facts)."""

from __future__ import annotations


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _figure(f: dict) -> str:
    if not f or f.get("value") is None:
        return "undefined"
    lo, hi = f.get("ci95") or [None, None]
    return f"{f['value']:.3f}" + (f" (95% CI {lo:.3f} to {hi:.3f})" if lo is not None else "")


def _preference_notes(config: dict) -> list[str]:
    notes = []
    criterion, composite = config.get("criterion"), config.get("composite")
    if criterion:
        notes.append(f"- Human preferences: the majority on the criterion `{criterion}`, not the overall choice")
    if composite:
        notes.append(f"- Composite preferences: the sign of the composite `{composite}` (scorers stacked per axis)")
    return notes


def datasheet_markdown(sheet: dict) -> str:
    recipe = sheet["recipe"]
    split = sheet["split"]
    lines = [
        f"# Datasheet: {sheet['project']} / {recipe['name']} v{recipe['version']}",
        "",
        f"- Export `{sheet['export']}`, created {sheet['created_at']} by {sheet['created_by'] or 'a command'}",
        f"- Format: `{sheet['format']}`{' (conversational)' if sheet['conversational'] else ' (standard strings)'}",
        f"- Rows: {split['train_rows']} train, {split['test_rows']} test; split by prompt group, test fraction "
        f"{split['test_fraction']}, seed {split['seed']}",
        f"- Content hash (sha256 of the JSONL files): `{sheet['content_hash']}`",
        "",
        "## Where the preferences come from",
        "",
        *(f"- {source}: {n}" for source, n in sorted(sheet["sources"].items())),
        *_preference_notes(recipe["config"]),
        "",
        "## Recipe",
        "",
        *(f"- `{k}`: {v}" for k, v in sorted(recipe["config"].items())),
        "",
        "## Funnel",
        "",
        "| step | in | removed | out | why |",
        "|---|---|---|---|---|",
        *(
            f"| {s['step']} | {s['rows_in']} | {s['removed']} | {s['rows_out']} | "
            + "; ".join(f"{k}: {v}" for k, v in s["reasons"].items())
            + " |"
            for s in sheet["funnel"]
        ),
        "",
        "## Margins and length",
        "",
        f"- Margin (strength of the preference, 0–1): {sheet['margin']}",
        f"- Chosen response longer than rejected: {_pct(sheet['chosen_longer_share'])}",
        "",
        "## Human agreement in the project",
        "",
        f"- Label space `{sheet['human_agreement']['label_space']}`, {sheet['human_agreement']['labels']} labels",
        f"- Fleiss' κ {_figure(sheet['human_agreement']['fleiss_kappa'])}",
        f"- Krippendorff's α {_figure(sheet['human_agreement']['krippendorff_alpha'])}",
        f"- Percent agreement {_figure(sheet['human_agreement']['percent_agreement'])}",
        "",
    ]
    return "\n".join(lines)
