"""How much GPU memory a job needs, and which way of training fits: LoRA in bf16, QLoRA (4-bit NF4 base), full
fine-tuning on one GPU, or full fine-tuning sharded over every GPU (FSDP).

Plain Python (no torch, no Django): the web process checks a job with it before queueing (when it knows the GPU
size: settings TRAINING_GPU_MEMORY_GIB / TRAINING_GPUS / TRAINING_NUM_MACHINES), and the runner checks again on the
worker with the real model config and the real free memory before loading anything. Both read the same numbers, so
the job page's plan is the one the worker follows.

The figures are the usual back-of-the-envelope ones (Rajbhandari et al. 2020 for model states, Korthikanti et al.
2022 for activations), rounded up: a plan that says "fits" leaves ~10% of the card free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

GiB = 1024**3
BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
# NF4 stores 4 bits per weight plus one 8-bit absmax per 64 weights, whose own fp32 scales (double quantisation)
# cost 32 bits per 256 blocks: 4 + 8/64 + 32/(64*256) bits.
NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8
OVERHEAD_BYTES = 1.5 * GiB  # CUDA context, cuBLAS workspaces, allocator slack
HEADROOM = 0.9  # plan to use at most this share of the memory


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model's config.json (decoder-only transformers)."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict) -> ModelShape:
        text = config.get("text_config") or config
        hidden = int(text["hidden_size"])
        heads = int(text.get("num_attention_heads") or max(hidden // 128, 1))
        return cls(
            layers=int(text["num_hidden_layers"]), hidden=hidden,
            intermediate=int(text.get("intermediate_size") or 4 * hidden), vocab=int(text["vocab_size"]),
            heads=heads, kv_heads=int(text.get("num_key_value_heads") or heads),
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        )  # fmt: skip

    @property
    def linear_params(self) -> int:
        """Weights of the decoder layers' linear projections (what LoRA adapts and NF4 quantises)."""
        kv = self.hidden * self.kv_heads // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * kv
        return self.layers * (attention + 3 * self.hidden * self.intermediate)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.layers * 2 * self.hidden + self.hidden

    def lora_params(self, rank: int) -> int:
        kv = self.hidden * self.kv_heads // self.heads
        attention = rank * ((self.hidden + self.hidden) * 2 + (self.hidden + kv) * 2)
        return self.layers * (attention + rank * 3 * (self.hidden + self.intermediate))


def read_shape(model: str, *, fetch: bool = False) -> ModelShape | None:
    """The shape of a model from its config.json: a local checkpoint folder's, or a hub id's from the local hub
    cache (with ``fetch``, as a worker may, from the hub). None when it cannot be read (a GGUF file, whose converted
    checkpoint the worker builds; a hub id not in the cache): the runner checks once it has the model."""
    path = Path(model).expanduser()
    config = path / "config.json"
    if not config.is_file() and "/" in model and not path.is_absolute() and not model.startswith((".", "~")):
        config = _hub_config(model, fetch=fetch)
    if config is None or not config.is_file():
        return None
    try:
        return ModelShape.from_config(json.loads(config.read_text()))
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _hub_config(repo: str, *, fetch: bool) -> Path | None:
    try:
        import huggingface_hub
        from huggingface_hub.errors import HFValidationError

        if fetch:
            return Path(huggingface_hub.hf_hub_download(repo, "config.json"))
        cached = huggingface_hub.try_to_load_from_cache(repo, "config.json")
        return Path(cached) if isinstance(cached, str) else None
    except (ImportError, OSError, ValueError, HFValidationError):  # offline, gated, missing: the runner decides
        return None
    except Exception:  # noqa: BLE001 - any hub failure (HTTP errors have several types): unknown here
        return None


@dataclass
class Plan:
    """One way of training the job and what it costs per GPU, in GiB."""

    strategy: str  # lora | qlora | full | fsdp
    checkpointing: bool
    need_gib: float
    have_gib: float | None
    parts: dict = field(default_factory=dict)  # weights, gradients, optimizer, reference, activations, overhead
    params_b: float = 0.0
    gpus: int = 1

    @property
    def fits(self) -> bool:
        return self.have_gib is None or self.need_gib <= self.have_gib * HEADROOM

    def as_dict(self) -> dict:
        return asdict(self) | {"fits": self.fits, "label": LABELS[self.strategy]}


LABELS = {
    "lora": "LoRA adapter, base not quantized",
    "qlora": "QLoRA: 4-bit NF4 base (double quantisation, bf16 compute)",
    "full": "full fine-tuning on one GPU",
    "fsdp": "full fine-tuning sharded with FSDP",
}


def activation_bytes(shape: ModelShape, max_length: int, *, checkpointing: bool, dtype_bytes: int = 2) -> float:
    """Activations of one pair (chosen + rejected) at max_length tokens: ~34·hidden bytes per token per layer in
    16-bit with flash/SDPA attention (Korthikanti et al. 2022), or with checkpointing each layer's input plus one
    layer's worth being recomputed; plus the log-prob head's fp32 chunk of logits."""
    tokens = 2 * max_length
    per_layer = 34 * shape.hidden * tokens * dtype_bytes / 2
    layers = (shape.layers * dtype_bytes * shape.hidden * tokens + per_layer) if checkpointing else (
        shape.layers * per_layer)  # fmt: skip
    return layers + 6 * shape.vocab * tokens


def estimate(shape: ModelShape, *, method: str, strategy: str, checkpointing: bool, max_length: int, lora_r: int,
             precision: str = "bf16", gpus: int = 1, have_gib: float | None = None) -> Plan:  # fmt: skip
    """Memory per GPU for one micro-batch of one pair. ``gpus``: the devices a sharded plan spreads over."""
    n = shape.params
    width = BYTES.get(precision, 2)
    reference = method in ("dpo", "kto")
    parts: dict[str, float] = {}
    if strategy in ("lora", "qlora"):
        if strategy == "qlora":
            parts["weights"] = shape.linear_params * NF4_BYTES + (n - shape.linear_params) * width
        else:
            parts["weights"] = n * width
        lora = shape.lora_params(lora_r)
        parts["adapter"] = lora * 16  # PEFT keeps adapters in fp32: weights, gradients, Adam's two moments
        # the reference is the base with the adapter switched off (PEFT): no second copy
    else:
        shards = gpus if strategy == "fsdp" else 1
        parts["weights"] = n * width / shards
        parts["gradients"] = n * width / shards
        parts["optimizer"] = n * 2 * width / shards  # Adam's moments in the weights' dtype (the runner loads bf16)
        if reference and shards > 1:
            # the reference log-probs are precomputed: on one GPU by the policy itself before training (no copy);
            # sharded, TRL loads a frozen reference for that pass (sharded alike) and frees it after
            parts["reference"] = n * width / shards
        if shards > 1:
            parts["gathered layer"] = 2 * (n - shape.embedding_params) / shape.layers * width  # one unsharded layer
    parts["activations"] = activation_bytes(shape, max_length, checkpointing=checkpointing, dtype_bytes=width)
    parts["overhead"] = OVERHEAD_BYTES
    need = sum(parts.values()) / GiB
    return Plan(strategy=strategy, checkpointing=checkpointing, need_gib=round(need, 1),
                have_gib=None if have_gib is None else round(have_gib, 1),
                parts={k: round(v / GiB, 2) for k, v in parts.items()}, params_b=round(n / 1e9, 2),
                gpus=gpus if strategy == "fsdp" else 1)  # fmt: skip


def candidates(*, lora: bool, quantization: str, sharding: str) -> list[str]:
    """The strategies to try, cheapest in speed first: the first that fits is the plan."""
    if lora:
        return {"none": ["lora"], "nf4": ["qlora"]}.get(quantization, ["lora", "qlora"])
    return {"none": ["full"], "fsdp": ["fsdp"]}.get(sharding, ["full", "fsdp"])


class DoesNotFit(ValueError):
    """No strategy fits: the message names the numbers."""


def choose(shape: ModelShape, *, method: str, lora: bool, quantization: str, sharding: str, checkpointing: str,
           max_length: int, lora_r: int, precision: str = "bf16", gpus: int = 1, have_gib: float | None = None,
           quantization_available: bool = True) -> Plan:  # fmt: skip
    """The plan a job follows: the first candidate strategy that fits (without activation checkpointing first,
    unless it is forced on, then with it), or DoesNotFit naming what each would need and what the GPUs have.
    With ``have_gib`` None (unknown GPU) the first candidate is returned, to be checked on the worker."""
    tried: list[Plan] = []
    for strategy in candidates(lora=lora, quantization=quantization, sharding=sharding):
        if strategy == "fsdp" and gpus <= 1 and sharding != "fsdp":
            continue  # nothing to shard over
        if strategy == "qlora" and not quantization_available and quantization != "nf4":
            continue  # auto never picks what the worker cannot run; an explicit nf4 fails there with the reason
        for ckpt in {"on": [True], "off": [False]}.get(checkpointing, [False, True]):
            plan = estimate(shape, method=method, strategy=strategy, checkpointing=ckpt, max_length=max_length,
                            lora_r=lora_r, precision=precision, gpus=gpus, have_gib=have_gib)  # fmt: skip
            if plan.fits:
                return plan
            tried.append(plan)
    raise DoesNotFit(refusal(tried, have_gib, gpus, lora=lora))


def refusal(tried: list[Plan], have_gib: float | None, gpus: int, *, lora: bool) -> str:
    best = {}
    for plan in tried:  # the cheapest attempt of each strategy
        if plan.strategy not in best or plan.need_gib < best[plan.strategy].need_gib:
            best[plan.strategy] = plan
    params = tried[0].params_b if tried else 0
    needs = "; ".join(f"{LABELS[p.strategy]} needs ≈ {p.need_gib:g} GiB per GPU"
                      + (f" over {p.gpus} GPUs" if p.gpus > 1 else "") for p in best.values())  # fmt: skip
    usable = (have_gib or 0) * HEADROOM
    hint = ("set quantization to nf4 (QLoRA), lower max_length, or use a GPU with more memory" if lora else
            "train a LoRA adapter (lora on; with quantization auto it falls back to QLoRA), add GPUs for sharding, "
            "or lower max_length")  # fmt: skip
    return (
        f"This model ({params:g} B parameters) does not fit: {needs}, and the "
        f"{'GPU has' if gpus == 1 else f'{gpus} GPUs have'} {have_gib:g} GiB each ({usable:.1f} GiB usable). "
        f"Try: {hint}."
    )


def describe(plan: dict) -> str:
    """One line for the job page: the strategy and where the memory goes."""
    label = plan.get("label") or LABELS.get(plan.get("strategy", ""), plan.get("strategy", ""))
    if plan.get("need_gib") is None:
        return f"{label} ({plan.get('reason') or 'size not estimated'})."
    parts = ", ".join(f"{k} {v:g}" for k, v in plan.get("parts", {}).items() if v >= 0.05)
    have = f" of {plan['have_gib']:g} GiB" if plan.get("have_gib") is not None else " (no GPU size to check against)"
    over = f" over {plan['gpus']} GPUs" if plan.get("gpus", 1) > 1 else ""
    ckpt = ", activation checkpointing" if plan.get("checkpointing") else ""
    return (
        f"{label}{over}{ckpt}: ≈ {plan['need_gib']:g} GiB per GPU{have} ({plan.get('params_b', 0):g} B "
        f"parameters; GiB: {parts})."
    )


def plan_job(spec, shape: ModelShape | None, *, gpus: int, have_gib: float | None, precision: str = "bf16",
             quantization_available: bool = True) -> dict:  # fmt: skip
    """The plan for a JobSpec as the job page shows it: ``checked`` says whether the numbers were compared (both the
    model's shape and the GPU size known). Raises DoesNotFit."""
    if shape is None:
        first = candidates(lora=spec.lora, quantization=spec.quantization, sharding=spec.sharding)[0]
        return {"strategy": first, "label": LABELS[first], "checked": False, "have_gib": have_gib,
                "reason": "the model's size is known once a worker loads its config"}  # fmt: skip
    plan = choose(shape, method=spec.method, lora=spec.lora, quantization=spec.quantization, sharding=spec.sharding,
                  checkpointing=spec.gradient_checkpointing, max_length=spec.max_length, lora_r=spec.lora_r,
                  precision=precision, gpus=gpus, have_gib=have_gib,
                  quantization_available=quantization_available)  # fmt: skip
    return plan.as_dict() | {"checked": have_gib is not None}
