"""The model card saved next to a job's adapter (README.md, as the hub shows it): base model, the export it was
trained on (with its datasheet), method, hyperparameters, final metrics, held-out evaluation and library versions.
A reward model's card says what its score means, how to load it, and its held-out accuracy beside the length
baseline."""

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
    method = {"dpo": f"DPO ({spec.loss_type})", "kto": "KTO", "orpo": "ORPO", "simpo": "SimPO",
              "reward": "reward modelling (Bradley–Terry)"}[spec.method]  # fmt: skip
    tags = ["trl", spec.method, "arbiter", *(["lora", "peft"] if spec.lora else []),
            *([] if spec.is_policy else ["reward-model"])]  # fmt: skip
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
    ]
    if spec.is_policy:
        lines.append(f"| beta | {_fmt(spec.resolved_beta())} |")
    else:
        lines.append(f"| center_rewards_coefficient | {_fmt(spec.resolved_center_rewards())} |")
    if args is not None and spec.method == "kto":
        lines.append(
            f"| desirable / undesirable weight | {_fmt(args.desirable_weight)} / {_fmt(args.undesirable_weight)} |"
        )
    for key, value in spec.as_dict().items():
        if key not in ("base_model", "learning_rate", "beta", "center_rewards"):
            lines.append(f"| {key} | {_fmt(value)} |")
    lines += ["", "## Final training metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(summary.items())]
    if not spec.is_policy:
        lines += reward_section(spec, evaluation)
    elif evaluation:
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


def reward_section(spec, evaluation: dict) -> list[str]:
    """What a reward model's score means and how well it ranks held-out pairs."""
    centring = spec.resolved_center_rewards()
    lines = [
        "",
        "## The reward",
        "",
        "A scalar per conversation (the prompt, then the response as the assistant's turn, through the tokenizer's "
        "chat template), read at its last token. Only differences between two responses to the same prompt mean "
        "something: the model was trained so that σ(r(chosen) − r(rejected)) is the probability that the chosen "
        "response is preferred"
        + (" (minus the pair's margin from the export inside the loss)" if spec.reward_margin else "")
        + ".",
        "",
        f"Centring: {'off' if centring is None else f'coefficient {centring:g} on the squared mean reward'}"
        + ("" if centring is None else ", so rewards stay near zero and scores of different prompts are comparable")
        + ".",
        "",
        "Load it as `AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)`"
        + (", then `PeftModel.from_pretrained(model, this_folder)` (the adapter carries the trained `score` head)"
           if spec.lora else "")
        + "; set `model.config.pad_token_id` to the tokenizer's (saved here).",
    ]  # fmt: skip
    if not evaluation:
        return lines
    baseline, reward = evaluation["length_baseline"], evaluation["reward"]
    lines += [
        "",
        f"## Held-out evaluation ({evaluation['pairs']} test pairs)",
        "",
        "| | preference accuracy |",
        "|---|---|",
        f"| this reward model | {_interval(evaluation, 'accuracy')} |",
        f"| pick the longer response | {_interval(baseline, 'accuracy')} |",
        "",
        f"Mean reward: chosen {_interval(reward['chosen'], 'mean')}, rejected {_interval(reward['rejected'], 'mean')}; "
        f"margin {_interval(reward['margin'], 'mean')}. An accuracy no better than the length baseline means the "
        "model may have learned length rather than quality.",
    ]  # fmt: skip
    return lines
