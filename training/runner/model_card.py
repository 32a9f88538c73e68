"""The model card saved next to a job's adapter (README.md, as the hub shows it): base model, the export it was
trained on (with its datasheet), method, hyperparameters, final metrics, held-out evaluation and library versions."""

from __future__ import annotations

import json


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _interval(block: dict, key: str) -> str:
    value, ci = block.get(key), block.get("ci95")
    if value is None:
        return "—"
    return f"{value:.3f} (95% CI {ci[0]:.3f}–{ci[1]:.3f}, n={block.get('n')})" if ci else f"{value:.3f}"


def model_card(*, spec, context: dict, hardware: dict, summary: dict, evaluation: dict, versions: dict, state: str,
               args=None, alarms: list | None = None) -> str:  # fmt: skip
    method = {"dpo": f"DPO ({spec.loss_type})", "kto": "KTO", "orpo": "ORPO", "simpo": "SimPO"}[spec.method]
    tags = ["trl", spec.method, "arbiter", *(["lora", "peft"] if spec.lora else [])]
    library = "peft" if spec.lora else "transformers"
    front = ["---", f"base_model: {json.dumps(spec.base_model)}", f"library_name: {library}", "tags:",
             *[f"- {t}" for t in tags], "---", ""]  # fmt: skip
    lines = [
        f"# {context.get('name') or method + ' on ' + str(context.get('export', ''))}",
        "",
        f"{'A LoRA adapter' if spec.lora else 'A model'} trained with {method} by Arbiter from `{spec.base_model}`.",
        "",
        f"- **State**: {state}"
        + (" (cancelled: the weights are those saved when it stopped)" if state == "cancelled" else "")
        + (" early by a health alarm: the weights are those of that step" if state == "stopped" else ""),  # fmt: skip
        f"- **Training data**: export `{context.get('export')}` of project `{context.get('project')}` "
        f"(recipe {context.get('recipe')}, {context.get('format')} format, content hash "
        f"`{context.get('content_hash', '')[:16]}`); datasheet: {context.get('datasheet_url', '—')}",
        f"- **Rows**: {context.get('rows_train')} train, {context.get('rows_test')} test (split by prompt)",
        f"- **Hardware**: {hardware.get('name')} ×{max(hardware.get('gpus', 0), 1)}, {hardware.get('precision')}, "
        f"micro-batch {hardware.get('micro_batch_size')} × accumulation {hardware.get('accumulation')}, "
        f"activation checkpointing {'on' if hardware.get('gradient_checkpointing') else 'off'}",
        "",
        "## Hyperparameters",
        "",
        "| setting | value |",
        "|---|---|",
        f"| learning rate | {_fmt(spec.resolved_learning_rate())} |",
        f"| beta | {_fmt(spec.resolved_beta())} |",
    ]
    if args is not None and spec.method == "kto":
        lines.append(
            f"| desirable / undesirable weight | {_fmt(args.desirable_weight)} / {_fmt(args.undesirable_weight)} |"
        )
    for key, value in spec.as_dict().items():
        if key not in ("base_model", "learning_rate", "beta"):
            lines.append(f"| {key} | {_fmt(value)} |")
    lines += ["", "## Final training metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(summary.items())]
    if evaluation:
        base, tuned, implicit = evaluation["base"], evaluation["tuned"], evaluation["implicit_reward"]
        lines += [
            "",
            f"## Held-out evaluation ({evaluation['pairs']} test pairs)",
            "",
            "| | preference accuracy | mean log-prob margin (chosen − rejected) |",
            "|---|---|---|",
            f"| base | {_interval(base, 'accuracy')} | {_interval(base['logp_margin'], 'mean')} |",
            f"| tuned | {_interval(tuned, 'accuracy')} | {_interval(tuned['logp_margin'], 'mean')} |",
            "",
            f"Implicit-reward accuracy (tuned vs base as reference, β={implicit['beta']}): "
            f"{_interval(implicit, 'accuracy')}; mean implicit margin {_interval(implicit['margin'], 'mean')}.",
        ]
        ppl, kl = evaluation.get("perplexity"), evaluation.get("kl")
        if ppl and ppl.get("tokens"):
            lines += ["", f"Perplexity on {ppl['on']} ({ppl['tokens']} tokens): base {_fmt(ppl['base'])}, "
                          f"tuned {_fmt(ppl['tuned'])} (coherence: lower is better)."]  # fmt: skip
        if kl and kl.get("n"):
            lines += ["", f"KL(tuned ‖ base), sampled on {kl['n']} held-out prompts: {_interval(kl, 'mean')} nats "
                          f"per answer, {_fmt(kl['per_token'])} per token."]  # fmt: skip
    if alarms:
        lines += [
            "",
            "## Health alarms",
            "",
            "| step | alarm | value | threshold | policy | advice |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {a['step']} | {a['title']} | {_fmt(a['value'])} | {a['threshold']} | {a['policy']} | "
                  f"{a['advice']} |" for a in alarms]  # fmt: skip
    lines += ["", "## Library versions", ""] + [f"- {k} {v}" for k, v in versions.items()]
    return "\n".join(front + lines) + "\n"
