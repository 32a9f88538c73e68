"""Sampling candidates from a local checkpoint with transformers, on a ``gpu`` queue worker (CPU or GPU): a base
model (folder, GGUF file or hub id, as for training jobs), optionally with a training job's LoRA adapter, so a tuned
model writes candidates without a model server. Imported by the task only: torch never enters the web process.

Prompts go in batches (left-padded); each slot of the plan is one ``generate`` call per batch, seeded from the
slot's seed, so a re-run of a batch asks the same thing. Candidates are written through the engine's
``record_candidate`` (one per slot, enforced by the database), so a killed worker's redelivered task fills only
what is missing. A local reply costs nothing and is not cached: the slot itself is the record.
"""

from __future__ import annotations

from pathlib import Path

import torch
from django.conf import settings

from judging.checkpoints import model_identity, resolve_base_model
from judging.client import Generated
from judging.endpoint import is_live
from judging.lifecycle import run_stop

from .engine import SampleCall, mark_duplicates, record_candidate
from .lifecycle import run_begin
from .models import Candidate, GenerationRun, Prompt
from .plan import messages_for, slots


def load(model_name: str, adapter: str):
    """(model, tokenizer) in eval mode on the best device, with the adapter applied when one is named."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base_model(model_name, Path(settings.MODEL_CACHE))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


@torch.no_grad()
def sample_batch(model, tokenizer, conversations: list[list[dict]], *, temperature: float, top_p: float,
                 max_tokens: int, seed: int | None) -> list[Generated]:  # fmt: skip
    """One sample per conversation; finish_reason "length" when it stopped at max_tokens without an end token."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
             if getattr(tokenizer, "chat_template", None) else "\n\n".join(m["content"] for m in c)
             for c in conversations]  # fmt: skip
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    if seed is not None:
        torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False}  # fmt: skip
    out = model.generate(**inputs, max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
    new = out[:, inputs["input_ids"].shape[1] :]
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, (list, tuple)) else [configured]
    eos = {tokenizer.eos_token_id, *configured} - {None}
    results = []
    for i, ids in enumerate(new.tolist()):
        ended = next((j for j, t in enumerate(ids) if t in eos), None)
        produced = ids[:ended] if ended is not None else [t for t in ids if t != tokenizer.pad_token_id]
        results.append(Generated(
            text=tokenizer.decode(produced, skip_special_tokens=True),
            tokens_in=int(inputs["attention_mask"][i].sum()),
            tokens_out=len(produced),
            finish_reason="stop" if ended is not None else "length",
        ))  # fmt: skip
    return results


def local_run(run: GenerationRun) -> bool:
    """Sample every missing slot of a live run; False when it stopped early (paused, cancelled, failed to load)."""
    run_begin(run)
    plan, generator = run.plan, run.generator
    try:
        model, tokenizer = load(generator.model, generator.adapter)
        identity = model_identity(generator.model, generator.adapter)
    except Exception as exc:  # noqa: BLE001 - any load failure ends the run with its reason
        run_stop(run, GenerationRun.State.FAILED, f"Could not load {generator.model}: {type(exc).__name__}: {exc}")
        return False
    plan_slots = slots(plan)
    done = set(
        Candidate.objects.filter(generator=generator, prompt_id__in=run.prompt_ids,
                                 slot_key__in=[s.key for s in plan_slots]).values_list("prompt_id", "slot_key")
    )  # fmt: skip
    prompts = list(Prompt.objects.filter(pk__in=run.prompt_ids).order_by("pk"))
    size = settings.GENERATION_LOCAL_BATCH
    for start in range(0, len(prompts), size):
        batch = prompts[start : start + size]
        for slot in plan_slots:
            todo = [p for p in batch if (p.pk, slot.key) not in done]
            if not todo:
                continue
            if not is_live(run):
                return False
            conversations = [messages_for(p.messages, plan) for p in todo]
            generated = sample_batch(model, tokenizer, conversations, temperature=slot.temperature,
                                     top_p=plan["top_p"], max_tokens=plan["max_tokens"], seed=slot.seed)  # fmt: skip
            for prompt, messages, result in zip(todo, conversations, generated, strict=True):
                record_candidate(run, SampleCall(prompt, slot, messages, key=""), result, from_cache=False,
                                 model=identity)  # fmt: skip
        mark_duplicates([p.pk for p in batch])
    return True
