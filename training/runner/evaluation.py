"""Held-out evaluation after training: the tuned policy against its base model on the export's test split.

For every test pair (a KTO export's rows are paired again by ``pair_id``; "both bad" pairs have no chosen response
and are skipped), the summed log-probability of each response given the prompt, under the base and the tuned model.
Reported, each with n and a 95% interval:
- ``base`` / ``tuned``: preference accuracy (share of pairs whose chosen response has the higher log-probability)
  and the mean log-probability margin (chosen − rejected);
- ``implicit_reward``: DPO's implicit reward of the tuned model against the base as reference,
  β·[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]: accuracy (share > 0) and mean.
Accuracies use Wilson intervals, means a normal interval (1.96 standard errors). Texts are built as TRL builds them
(trl.data_utils.maybe_apply_chat_template; an EOS token ends a plain-text response).
Coherence: the perplexity of each model on the held-out chosen responses; drift: a sampled estimate of KL(tuned ‖
base) on held-out prompts (sampled_kl). Also a side-by-side table of greedy answers from both models for the first
few test prompts (a plain-text prompt is sent as one user turn when the tokenizer has a chat template).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch


def wilson(successes: int, n: int, z: float = 1.96) -> list[float] | None:
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mean_interval(values: list[float], z: float = 1.96) -> dict:
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "ci95": None}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "ci95": [mean - half, mean + half]}


def accuracy(flags: list[bool]) -> dict:
    n, hits = len(flags), sum(flags)
    return {"n": n, "accuracy": hits / n if n else None, "ci95": wilson(hits, n)}


def test_pairs(test, limit: int) -> list[dict]:
    """(prompt, chosen, rejected) dicts from a DPO or KTO test split, in pair id order."""
    rows = test.to_list()
    if "completion" not in test.column_names:
        pairs = [{"pair_id": r.get("pair_id"), "prompt": r["prompt"], "chosen": r["chosen"],
                  "rejected": r["rejected"]} for r in rows]  # fmt: skip
    else:
        by_pair: dict = {}
        for r in rows:
            side = "chosen" if r["label"] else "rejected"
            by_pair.setdefault(r.get("pair_id"), {"pair_id": r.get("pair_id"), "prompt": r["prompt"]})[side] = r[
                "completion"
            ]
        pairs = [p for p in by_pair.values() if "chosen" in p and "rejected" in p]
    pairs.sort(key=lambda p: (p["pair_id"] is None, p["pair_id"] or 0))
    return pairs[:limit]


def test_prompts(test, limit: int) -> list:
    """The first ``limit`` distinct held-out prompts (strings or message lists), in pair id order."""
    seen, out = set(), []
    for pair in test_pairs(test, len(test)):
        key = repr(pair["prompt"])
        if key not in seen:
            seen.add(key)
            out.append(pair["prompt"])
        if len(out) == limit:
            break
    return out


@torch.no_grad()
def answer_lengths(model, tokenizer, prompts: list, max_new_tokens: int) -> list[int]:
    """Tokens in the greedy answer to each prompt (EOS ends an answer; capped at max_new_tokens)."""
    device = next(model.parameters()).device
    out = []
    for prompt in prompts:
        ids = tokenizer(_prompt_text(tokenizer, prompt), add_special_tokens=False, return_tensors="pt").to(device)
        answer = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)[0, ids["input_ids"].shape[1] :]  # fmt: skip
        eos = (answer == tokenizer.eos_token_id).nonzero()
        out.append(int(eos[0, 0]) if len(eos) else int(answer.numel()))
    return out


def _texts(pair: dict, tokenizer) -> tuple[str, str, str]:
    from trl.data_utils import maybe_apply_chat_template

    texts = maybe_apply_chat_template(
        {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]}, tokenizer
    )
    chosen, rejected = texts["chosen"], texts["rejected"]
    if not isinstance(pair["chosen"], list):  # plain text: TRL ends a response with EOS
        eos = tokenizer.eos_token or ""
        chosen, rejected = (t if t.endswith(eos) else t + eos for t in (chosen, rejected))
    return texts["prompt"], chosen, rejected


def sequence_logps(model, tokenizer, prompt: str, completions: list[str], max_length: int) -> list[float]:
    """Summed log-probability of each completion's tokens after the prompt (truncated to max_length tokens)."""
    return [logp for logp, _ in sequence_scores(model, tokenizer, prompt, completions, max_length)]


@torch.no_grad()
def sequence_scores(model, tokenizer, prompt: str, completions: list[str], max_length: int) -> list[tuple[float, int]]:
    """(summed log-probability, number of tokens) of each completion after the prompt (truncated to max_length)."""
    device = next(model.parameters()).device
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    sequences, starts = [], []
    for text in completions:
        ids = (prompt_ids + tokenizer(text, add_special_tokens=False)["input_ids"])[:max_length]
        sequences.append(ids)
        starts.append(min(len(prompt_ids), len(ids)))
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)
    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    out = []
    for i, s in enumerate(sequences):
        # token t is predicted at position t-1; completion tokens are positions starts[i] .. len(s)-1
        scored = logps[i, max(starts[i] - 1, 0) : len(s) - 1]
        out.append((float(scored.sum()), int(scored.numel())))
    return out


def _prompt_text(tokenizer, prompt) -> str:
    from trl.data_utils import maybe_apply_chat_template

    if isinstance(prompt, str) and getattr(tokenizer, "chat_template", None):
        prompt = [{"role": "user", "content": prompt}]  # a chat model answers a plain prompt best as a user turn
    return maybe_apply_chat_template({"prompt": prompt}, tokenizer)["prompt"]


@torch.no_grad()
def _completion_logp(model, ids, prompt_len: int) -> float:
    logits = model(input_ids=ids).logits[:, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return float(logps[0, prompt_len - 1 :].sum())


@torch.no_grad()
def sampled_kl(policy, base_model, base_scope, tokenizer, prompts: list, max_new_tokens: int, seed: int) -> dict:
    """A sampled estimate of KL(tuned ‖ reference) on held-out prompts: answers sampled from the tuned model (full
    distribution: temperature 1, no top-k/top-p), KL ≈ mean of log π(y|x) − log π_ref(y|x) (the unbiased k1
    estimator), per answer and per token."""
    device = next(policy.parameters()).device
    per_answer, tokens = [], 0
    for i, prompt in enumerate(prompts):
        ids = tokenizer(_prompt_text(tokenizer, prompt), add_special_tokens=False, return_tensors="pt").to(device)
        prompt_len = ids["input_ids"].shape[1]
        torch.manual_seed(seed + i)
        out = policy.generate(**ids, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_k=0,
                              top_p=1.0, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        if out.shape[1] <= prompt_len:
            continue
        tuned = _completion_logp(policy, out, prompt_len)
        with base_scope():
            ref = _completion_logp(base_model, out, prompt_len)
        per_answer.append(tuned - ref)
        tokens += out.shape[1] - prompt_len
    result = mean_interval(per_answer)
    result["per_token"] = sum(per_answer) / tokens if tokens else None
    result["tokens"] = tokens
    return result


def perplexity(logp_sum: float, tokens: int) -> float | None:
    return math.exp(-logp_sum / tokens) if tokens else None


@torch.no_grad()
def generate(model, tokenizer, prompt, max_new_tokens: int) -> str:
    text = _prompt_text(tokenizer, prompt)
    device = next(model.parameters()).device
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def evaluate(policy, tokenizer, test, spec, *, base_loader=None) -> dict:
    """``policy`` is the trained model (a PEFT model for LoRA: the base is the same model with the adapter off);
    for full fine-tuning ``base_loader`` loads the base model."""
    policy.eval()
    base = base_loader() if base_loader is not None else None
    if base is not None:
        base.eval()

    def base_scope():
        return policy.disable_adapter() if base is None else nullcontext()

    base_model = base if base is not None else policy
    pairs = test_pairs(test, max(spec.eval_pairs, spec.eval_generations))
    scored = pairs[: spec.eval_pairs]
    beta = spec.resolved_beta()
    rows = []
    chosen_tokens, chosen_logp = 0, [0.0, 0.0]  # base, tuned
    for pair in scored:
        prompt, chosen, rejected = _texts(pair, tokenizer)
        tuned = sequence_scores(policy, tokenizer, prompt, [chosen, rejected], spec.max_length)
        with base_scope():
            ref = sequence_scores(base_model, tokenizer, prompt, [chosen, rejected], spec.max_length)
        chosen_tokens += tuned[0][1]
        chosen_logp[0] += ref[0][0]
        chosen_logp[1] += tuned[0][0]
        rows.append(([v for v, _ in tuned], [v for v, _ in ref]))
    result = {
        "pairs": len(rows),
        "base": {**accuracy([r[0] > r[1] for _, r in rows]),
                 "logp_margin": mean_interval([r[0] - r[1] for _, r in rows])},
        "tuned": {**accuracy([t[0] > t[1] for t, _ in rows]),
                  "logp_margin": mean_interval([t[0] - t[1] for t, _ in rows])},
        "implicit_reward": {
            **accuracy([(t[0] - r[0]) - (t[1] - r[1]) > 0 for t, r in rows]),
            "margin": mean_interval([beta * ((t[0] - r[0]) - (t[1] - r[1])) for t, r in rows]),
            "beta": beta,
        },
        "perplexity": {"base": perplexity(chosen_logp[0], chosen_tokens),
                       "tuned": perplexity(chosen_logp[1], chosen_tokens), "tokens": chosen_tokens,
                       "on": "the held-out pairs' chosen responses"},
    }  # fmt: skip
    kl_prompts = [p["prompt"] for p in pairs[: spec.eval_generations]]
    result["kl"] = sampled_kl(policy, base_model, base_scope, tokenizer, kl_prompts, spec.eval_max_new_tokens,
                              spec.seed)  # fmt: skip
    generations = []
    for pair in pairs[: spec.eval_generations]:
        tuned_text = generate(policy, tokenizer, pair["prompt"], spec.eval_max_new_tokens)
        with base_scope():
            base_text = generate(base_model, tokenizer, pair["prompt"], spec.eval_max_new_tokens)
        prompt = pair["prompt"]
        shown = prompt if isinstance(prompt, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)
        generations.append({"pair_id": pair["pair_id"], "prompt": shown, "base": base_text, "tuned": tuned_text})
    result["generations"] = generations
    return result
