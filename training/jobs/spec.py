"""What a training job runs: method, base model, LoRA and hyperparameters, with defaults from practice and presets.

Plain Python (no Django, no torch): the web process validates a spec with it before a job is queued, and the runner
(training.runner) turns it into TRL arguments on the worker. Every field has a one-line help text that the launch
form shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .health import ALARMS, DEFAULT_POLICY, POLICIES

METHODS = ("dpo", "kto", "orpo", "simpo", "reward")
# TRL 1.16 DPOConfig.loss_type values that need nothing beyond the (prompt, chosen, rejected) rows.
DPO_LOSSES = ("sigmoid", "ipo", "robust", "hinge", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm")  # fmt: skip
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
CHECKPOINTING = ("auto", "on", "off")
QUANTIZATIONS = ("auto", "none", "nf4")
SHARDINGS = ("auto", "none", "fsdp")
COMPILE_MIN_STEPS = 1000

HELP = {
    "method": "DPO (pairs), KTO (unpaired good/bad examples), ORPO (no reference model), SimPO (length-normalised, "
    "no reference model), or reward: a reward model (a scorer of responses, trained on pairs; it does not generate).",
    "loss_type": "DPO only: sigmoid is the paper's loss; ipo, robust (noisy labels) and hinge are common variants.",
    "base_model": "A hub id (owner/name), a local checkpoint folder or a local .gguf file.",
    "lora": "Train a LoRA adapter (small, fast, the default) instead of every weight.",
    "lora_r": "LoRA rank: 8-64; higher adapts more and costs more memory.",
    "lora_alpha": "LoRA scaling; usually twice the rank.",
    "lora_dropout": "Dropout on the LoRA branch: 0 lets PEFT skip that pass (faster); 0.05-0.1 against overfitting.",
    "lora_target_modules": "Layers that get adapters: all-linear, or comma-separated names such as q_proj,v_proj.",
    "learning_rate": "Empty: full fine-tuning 5e-7 (DPO, KTO), 8e-6 (ORPO), 1e-6 (SimPO), 5e-6 (reward model); LoRA "
    "ten times that.",
    "beta": "Strength of the pull towards the reference (DPO, KTO), the odds-ratio weight (ORPO) or the reward scale "
    "(SimPO). Empty: 0.1, or 2.0 for SimPO.",
    "simpo_gamma": "SimPO only: the target reward margin ratio (gamma / beta).",
    "epochs": "Passes over the training split.",
    "max_steps": "Stop after this many optimizer steps (0: run the epochs).",
    "warmup_ratio": "Share of the steps spent warming the learning rate up.",
    "max_length": "Tokens per prompt + response; longer rows are truncated (a reward model drops them instead).",
    "batch_size": "Pairs per optimizer step (micro-batch x accumulation).",
    "micro_batch_size": "Pairs per forward pass on one device; 0 sizes it to the device's memory.",
    "gradient_checkpointing": "Recompute activations to save memory: auto turns it on only when memory needs it.",
    "precision": "auto: bf16 on Ampere or newer GPUs, fp16 on older ones, fp32 on CPU.",
    "torch_compile": "torch.compile of each decoder layer on a GPU (compiled once, reused by every layer, cached on "
    "the worker for later jobs of the same shape): faster steps after a short compile; auto turns it on for runs of "
    "1,000 steps or more.",
    "fused_kernels": "DPO on a GPU: Liger's fused Triton kernels (RMSNorm, SwiGLU, RoPE) where the liger-kernel "
    "package is installed: auto uses them there, off never.",
    "quantization": "LoRA only. nf4: QLoRA, the base model loaded in 4-bit NF4 with double quantisation and bf16 "
    "compute (bitsandbytes, a GPU); none: bf16; auto: bf16 when it fits the GPU, else QLoRA.",
    "sharding": "Full fine-tuning only. fsdp: PyTorch FSDP shards weights, gradients and optimizer state over every "
    "GPU of the worker (and of every node of a multi-node worker); none: each GPU holds a whole copy; auto: shard only "
    "when a copy does not fit one GPU.",
    "desirable_weight": "KTO only: weight of good examples; empty balances the classes.",
    "undesirable_weight": "KTO only: weight of bad examples; empty balances the classes.",
    "seed": "Seed for data order, initialisation and sampling.",
    "eval_pairs": "Held-out pairs scored by the base and tuned models after training.",
    "eval_generations": "Held-out prompts answered by both models for the side-by-side table.",
    "eval_max_new_tokens": "Length of those answers, in tokens.",
    "eval_prompts": "Held-out prompts both models answer after training for the judged win rate against the base "
    "(the project's judge; 0: no automatic evaluation).",
    "rpo_alpha": "DPO only: weight of an SFT (negative log-likelihood) term on the chosen answers, as in RPO; 0.2-1.0 "
    "counters chosen log-probs falling (likelihood displacement). 0: off.",
    "label_smoothing": "DPO robust and exo_pair losses only: the assumed share of flipped labels (robust: below 0.5, "
    "0.1 is typical; exo_pair: about 1e-3).",
    "ld_alpha": "DPO only: LD-DPO's weight on the part of the longer answer beyond the shorter one's length (0-1; 1 is "
    "plain DPO, lower values stop rewarding length). Empty: off.",
    "use_weighting": "DPO only: WPO weighting of each pair by how likely the policy finds it (off-policy data).",
    "alarm_window": "Logged steps the trend alarms (flat margin, saturation, displacement) look back over.",
    "kl_max": "Alarm when the policy drifts more than this many nats per response from its reference (seed 003: 5-15).",
    "margin_flat_below": "Alarm when the reward margin moves less than this over the first window after warmup.",
    "saturation_growth": "Alarm when accuracies sit at 1.0 in the first half while the margin grows by more than this "
    "factor over a window.",
    "displacement_drop": "Alarm when the chosen answers' log-probs are more than this many nats below the reference's "
    "and still falling over a window while the margin rises.",
    "length_growth": "Alarm when held-out answers get this many times longer than the base model's.",
    "length_checks": "How many times during training a few held-out prompts are answered to watch the length (0: "
    "never).",
    "on_nan": "What a non-finite loss does: off, warn, or stop (saves the adapter, marks the job stopped early).",
    "on_kl": "What the KL alarm does: off, warn or stop.",
    "on_margin_flat": "What the flat-margin alarm does: off, warn or stop.",
    "on_saturation": "What the saturation alarm does: off, warn or stop.",
    "on_displacement": "What the likelihood-displacement alarm does: off, warn or stop.",
    "on_length": "What the length alarm does: off, warn or stop.",
    "init_adapter": "Start from this LoRA adapter (a folder with adapter_config.json, e.g. the previous round's) and "
    "train it further, instead of a fresh adapter on the base model. Empty: a fresh adapter.",
    "center_rewards": "Reward model only: weight of a penalty on the squared mean reward, which keeps rewards centred "
    "on zero (Eisenstein et al. 2023). Empty: 0.01, as TRL recommends; 0: off.",
    "reward_margin": "Reward model only: subtract each pair's margin (the export's margin column: vote share, or judge "
    "or rating difference / 9, in [0, 1]) inside the loss, so clearer preferences must be won by more.",
    "reference": "With init_adapter: the model the policy is pulled towards. previous: the adapter's own model (a "
    "frozen copy of it, TRL's default; each round moves a step from the last). initial: the base model without any "
    "adapter (RLHFlow's iterative DPO keeps the reference at the starting model).",
}
REFERENCES = ("previous", "initial")


def resolve_precision(requested: str, *, cuda: bool, capability_major: int | None) -> str:
    """The precision a run uses: the spec's, or for "auto" bf16 on Ampere (compute capability 8) or newer, fp16 on
    older GPUs, fp32 without one. The runner asks torch for the device; the worker that writes a multi-GPU
    accelerate config asks nvidia-smi (no torch there), and both must agree."""
    if requested != "auto":
        return requested
    if not cuda:
        return "fp32"
    return "bf16" if (capability_major or 0) >= 8 else "fp16"


@dataclass(frozen=True)
class JobSpec:
    method: str = "dpo"
    loss_type: str = "sigmoid"
    base_model: str = ""
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    learning_rate: float | None = None
    beta: float | None = None
    simpo_gamma: float = 0.5
    epochs: float = 1.0
    max_steps: int = 0
    warmup_ratio: float = 0.1
    max_length: int = 1024
    batch_size: int = 32
    micro_batch_size: int = 0
    gradient_checkpointing: str = "auto"
    precision: str = "auto"
    torch_compile: str = "auto"
    fused_kernels: str = "auto"
    quantization: str = "auto"
    sharding: str = "auto"
    desirable_weight: float | None = None
    undesirable_weight: float | None = None
    seed: int = 0
    eval_pairs: int = 200
    eval_generations: int = 4
    eval_max_new_tokens: int = 64
    eval_prompts: int = 50
    rpo_alpha: float = 0.0
    label_smoothing: float = 0.0
    ld_alpha: float | None = None
    use_weighting: bool = False
    alarm_window: int = 5
    kl_max: float = 10.0
    margin_flat_below: float = 0.01
    saturation_growth: float = 0.5
    displacement_drop: float = 1.0
    length_growth: float = 2.0
    length_checks: int = 4
    on_nan: str = DEFAULT_POLICY["nan"]
    on_kl: str = DEFAULT_POLICY["kl"]
    on_margin_flat: str = DEFAULT_POLICY["margin_flat"]
    on_saturation: str = DEFAULT_POLICY["saturation"]
    on_displacement: str = DEFAULT_POLICY["displacement"]
    on_length: str = DEFAULT_POLICY["length"]
    init_adapter: str = ""
    reference: str = "previous"
    center_rewards: float | None = None
    reward_margin: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> JobSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        spec = cls(**{k: v for k, v in data.items() if v is not None})
        spec.validate()
        return spec

    def validate(self) -> None:
        def need(ok: bool, field: str, message: str) -> None:
            if not ok:
                raise ValueError(f"{field}: {message}")

        need(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}")
        need(self.loss_type in DPO_LOSSES, "loss_type", f"must be one of {', '.join(DPO_LOSSES)}")
        need(bool(self.base_model.strip()), "base_model", "name a hub id or a local path")
        need(1 <= self.lora_r <= 1024, "lora_r", "must be between 1 and 1024")
        need(self.lora_alpha >= 1, "lora_alpha", "must be at least 1")
        need(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "must be in [0, 1)")
        need(bool(self.lora_target_modules.strip()), "lora_target_modules", "name the layers or say all-linear")
        need(self.learning_rate is None or 0 < self.learning_rate <= 1e-2, "learning_rate", "must be in (0, 0.01]")
        need(self.beta is None or 0 < self.beta <= 100, "beta", "must be in (0, 100]")
        need(0 <= self.simpo_gamma <= 10, "simpo_gamma", "must be in [0, 10]")
        need(0 < self.epochs <= 100, "epochs", "must be in (0, 100]")
        need(self.max_steps >= 0, "max_steps", "must be 0 (use the epochs) or more")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        need(16 <= self.max_length <= 131072, "max_length", "must be between 16 and 131072")
        need(self.batch_size >= 1, "batch_size", "must be at least 1")
        need(0 <= self.micro_batch_size <= self.batch_size, "micro_batch_size", "must be 0 (auto) or ≤ batch_size")
        need(self.gradient_checkpointing in CHECKPOINTING, "gradient_checkpointing", "must be auto, on or off")
        need(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
        need(self.torch_compile in CHECKPOINTING, "torch_compile", "must be auto, on or off")
        need(self.fused_kernels in CHECKPOINTING, "fused_kernels", "must be auto, on or off")
        need(self.quantization in QUANTIZATIONS, "quantization", f"must be one of {', '.join(QUANTIZATIONS)}")
        need(self.sharding in SHARDINGS, "sharding", f"must be one of {', '.join(SHARDINGS)}")
        need(self.quantization != "nf4" or self.lora, "quantization", "QLoRA trains a LoRA adapter: turn lora on "
             "(a 4-bit model cannot be fully fine-tuned)")  # fmt: skip
        need(self.quantization != "nf4" or self.precision in ("auto", "bf16"), "quantization",
             "QLoRA computes in bf16: leave precision on auto or bf16")  # fmt: skip
        need(self.sharding in ("auto", "none") or not self.lora, "sharding", "sharding is for full fine-tuning; a "
             "LoRA adapter of a model too big for one GPU trains with quantization nf4 (QLoRA)")  # fmt: skip
        for name in ("desirable_weight", "undesirable_weight"):
            value = getattr(self, name)
            need(value is None or 0 < value <= 100, name, "must be in (0, 100]")
        need(self.eval_pairs >= 0 and self.eval_generations >= 0, "eval_pairs", "must not be negative")
        need(0 <= self.eval_prompts <= 10000, "eval_prompts", "must be between 0 and 10000")
        need(1 <= self.eval_max_new_tokens <= 4096, "eval_max_new_tokens", "must be between 1 and 4096")
        dpo = self.method == "dpo"
        need(0 <= self.rpo_alpha <= 10, "rpo_alpha", "must be in [0, 10]")
        need(dpo or not self.rpo_alpha, "rpo_alpha", "the SFT term is a DPO setting")
        need(dpo or self.ld_alpha is None, "ld_alpha", "LD-DPO is a DPO setting")
        need(dpo or not self.use_weighting, "use_weighting", "WPO weighting is a DPO setting")
        need(self.ld_alpha is None or 0 <= self.ld_alpha <= 1, "ld_alpha", "must be in [0, 1]")
        smoothing_max = 0.5 if self.loss_type == "robust" else 1.0
        need(0 <= self.label_smoothing < smoothing_max, "label_smoothing", f"must be in [0, {smoothing_max:g})")
        need(not self.label_smoothing or (dpo and self.loss_type in ("robust", "exo_pair")), "label_smoothing",
             "only the robust and exo_pair DPO losses use it")  # fmt: skip
        need(self.loss_type != "exo_pair" or not dpo or self.label_smoothing > 0, "label_smoothing",
             "the exo_pair loss needs it above 0 (the EXO paper uses 1e-3)")  # fmt: skip
        need(not self.use_weighting or not self.loss_type.startswith("aot"), "use_weighting",
             "WPO weighting does not work with the aot losses")  # fmt: skip
        # TRL 1.16 multiplies its SFT loss in place by the WPO weights and fails: one or the other
        need(not (self.use_weighting and self.rpo_alpha), "use_weighting", "TRL 1.16 cannot weight the SFT term: "
             "use rpo_alpha or use_weighting, not both")  # fmt: skip
        need(2 <= self.alarm_window <= 1000, "alarm_window", "must be between 2 and 1000")
        need(self.kl_max > 0, "kl_max", "must be above 0")
        need(self.margin_flat_below >= 0, "margin_flat_below", "must not be negative")
        need(self.saturation_growth >= 0, "saturation_growth", "must not be negative")
        need(self.displacement_drop >= 0, "displacement_drop", "must not be negative")
        need(self.length_growth > 1, "length_growth", "must be above 1")
        need(0 <= self.length_checks <= 100, "length_checks", "must be between 0 and 100")
        need(self.reference in REFERENCES, "reference", f"must be one of {', '.join(REFERENCES)}")
        need(not self.init_adapter or self.lora, "init_adapter", "continuing an adapter needs lora on")
        reward = self.method == "reward"
        need(self.center_rewards is None or 0 <= self.center_rewards <= 10, "center_rewards",
             "must be in [0, 10] (0: off)")  # fmt: skip
        need(reward or self.center_rewards is None, "center_rewards", "centring rewards is a reward-model setting")
        need(reward or not self.reward_margin, "reward_margin", "a margin in the loss is a reward-model setting")
        need(not reward or self.beta is None, "beta", "a reward model has no β")
        need(not reward or not self.init_adapter, "init_adapter",
             "a reward model starts from the base model (continuing an adapter is not supported)")  # fmt: skip
        for name in ALARMS:
            need(getattr(self, f"on_{name}") in POLICIES, f"on_{name}", f"must be one of {', '.join(POLICIES)}")

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def export_format(self) -> str:
        """The export format the method reads."""
        return "kto" if self.method == "kto" else "dpo"

    def compiles(self, planned_steps: int) -> bool:
        """Whether to torch.compile a GPU run of this many optimizer steps (docs/PERFORMANCE.md has what compiling
        costs and saves)."""
        return self.torch_compile == "on" or (self.torch_compile == "auto" and planned_steps >= COMPILE_MIN_STEPS)

    @property
    def needs_reference(self) -> bool:
        return self.method in ("dpo", "kto")

    @property
    def is_policy(self) -> bool:
        """Whether the trained model answers prompts (every method but reward, whose model scores responses)."""
        return self.method != "reward"

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        # reward: full fine-tuning of reward models uses ~5e-6 to 1e-5 (InstructGPT 9e-6, Skywork 2e-6)
        full = {"dpo": 5e-7, "kto": 5e-7, "orpo": 8e-6, "simpo": 1e-6, "reward": 5e-6}[self.method]
        return full * 10 if self.lora else full

    def resolved_beta(self) -> float:
        if self.beta is not None:
            return self.beta
        return 2.0 if self.method == "simpo" else 0.1

    def resolved_center_rewards(self) -> float | None:
        """TRL's center_rewards_coefficient: None (off) for 0, 0.01 (TRL's recommendation) when unset."""
        value = 0.01 if self.center_rewards is None else self.center_rewards
        return value or None


def kto_weights(spec: JobSpec, desirable: int, undesirable: int) -> tuple[float, float]:
    """KTO's class weights: the paper keeps desirable_weight · n_desirable / (undesirable_weight · n_undesirable)
    in [1, 4/3]; unset weights are chosen so the ratio is 1 (the smaller class is up-weighted)."""
    if spec.desirable_weight is not None and spec.undesirable_weight is not None:
        return spec.desirable_weight, spec.undesirable_weight
    if not desirable or not undesirable:
        return spec.desirable_weight or 1.0, spec.undesirable_weight or 1.0
    if spec.desirable_weight is not None:
        return spec.desirable_weight, spec.desirable_weight * desirable / undesirable
    if spec.undesirable_weight is not None:
        return spec.undesirable_weight * undesirable / desirable, spec.undesirable_weight
    if desirable >= undesirable:
        return 1.0, round(desirable / undesirable, 4)
    return round(undesirable / desirable, 4), 1.0


PRESETS: dict[str, dict] = {
    "dpo-lora": {"label": "DPO + LoRA (default)", "settings": {"method": "dpo"}},
    "dpo-full": {
        "label": "DPO, full fine-tuning (sharded over the GPUs when one cannot hold it)",
        "settings": {"method": "dpo", "lora": False},
    },
    "dpo-lora-r64": {
        "label": "DPO + LoRA r64 (seed 003: rank 64-128 for DPO)",
        "settings": {"method": "dpo", "lora_r": 64, "lora_alpha": 128},
    },  # fmt: skip
    "dpo-lora-r128": {
        "label": "DPO + LoRA r128",
        "settings": {"method": "dpo", "lora_r": 128, "lora_alpha": 256},
    },  # fmt: skip
    "dpo-qlora": {
        "label": "DPO + QLoRA r64 (4-bit NF4 base: big models on one GPU)",
        "settings": {"method": "dpo", "quantization": "nf4", "lora_r": 64, "lora_alpha": 128},
    },  # fmt: skip
    "ipo-lora": {
        "label": "IPO + LoRA (less overfitting on deterministic labels)",
        "settings": {"method": "dpo", "loss_type": "ipo"},
    },  # fmt: skip
    "robust-dpo-lora": {
        "label": "Robust DPO + LoRA (noisy labels)",
        "settings": {"method": "dpo", "loss_type": "robust"},
    },  # fmt: skip
    "kto-lora": {"label": "KTO + LoRA", "settings": {"method": "kto"}},
    "orpo-lora": {"label": "ORPO + LoRA (no reference model)", "settings": {"method": "orpo"}},
    "simpo-lora": {"label": "SimPO + LoRA (no reference model)", "settings": {"method": "simpo"}},
    "reward-lora": {
        "label": "Reward model + LoRA (a scorer of responses, from pairs)",
        "settings": {"method": "reward", "eval_prompts": 0, "length_checks": 0},  # it answers no prompts
    },  # fmt: skip
    "smoke": {
        "label": "Smoke test: 2 steps, short rows (checks the pipeline end to end)",
        "settings": {
            "max_steps": 2,
            "max_length": 128,
            "batch_size": 2,
            "eval_pairs": 8,
            "eval_generations": 2,
            "eval_max_new_tokens": 16,
            "eval_prompts": 4,
            "length_checks": 2,
            "learning_rate": 1e-3,  # so two steps move the model enough for its answers to differ from the base's
        },
    },  # fmt: skip
}


def spec_from_preset(preset: str, overrides: dict) -> JobSpec:
    if preset and preset not in PRESETS:
        raise ValueError(f"preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    settings = {**(PRESETS[preset]["settings"] if preset else {}), **overrides}
    return JobSpec.from_dict(settings)
