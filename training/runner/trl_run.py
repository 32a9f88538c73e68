"""One training run with TRL 1.16: model and data in, adapter (or model), metrics and evaluation out.

A reward-model job (method "reward") trains a sequence classifier with one output (the base model's checkpoint,
loaded with a fresh ``score`` head; PEFT's SEQ_CLS task saves that head with the adapter) on rows tokenized by
training.runner.reward, answers no prompts (no length checks), and is evaluated as a scorer.

Called by training.runner in a child process of a GPU worker (torch is imported here and nowhere in the web
process). Progress goes to a sink (training.runner.sinks): the job's database rows, or files for the benchmark.

Defaults that matter for speed (issue 6; measured in docs/PERFORMANCE.md):
- weights are loaded in bf16 (fp16 before Ampere) on a GPU rather than fp32 with autocast;
- the reference log-probs are precomputed once when the reference is frozen (DPO, KTO), in large batches, so a
  training step runs one forward pass per sequence instead of two;
- the micro-batch is sized to the free device memory, and activation checkpointing is turned on only when even a
  micro-batch of one pair would not fit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from ..jobs.health import HealthMonitor, length_check_steps
from ..jobs.memory import NF4_BYTES, ModelShape, plan_job
from ..jobs.spec import JobSpec, kto_weights, resolve_precision
from .evaluation import answer_lengths, evaluate, test_prompts
from .model_card import model_card
from .reward import evaluate_reward, reward_rows

GiB = 1024**3


class ModelLoadError(Exception):
    """The base model could not be loaded (bad path, unknown architecture, hub unreachable or gated)."""

    def __init__(self, name: str, exc: BaseException):
        first = (str(exc).strip().splitlines() or [""])[0]
        super().__init__(f"Could not load the base model {name!r}: {type(exc).__name__}: {first[:1000]}")


@contextmanager
def reference_fingerprint(token: str):
    """TRL names its cache of precomputed reference log-probs after a SHA-256 of every weight
    (``trl.trainer.utils.hash_module``), which copies the whole model to the CPU first: 12.4 s of a 1.7B-parameter
    job on an H100 (docs/PERFORMANCE.md). While the trainer is built, that hash is replaced by one of ``token`` (the
    run's own output folder, unique per run, so no run can ever pick up another's cache) and the parameter shapes.
    tests/training/test_runner.py checks that TRL still has the names patched here."""
    import trl.trainer.dpo_trainer as dpo
    import trl.trainer.kto_trainer as kto

    def fingerprint(module) -> str:
        shapes = ",".join(f"{n}:{tuple(p.shape)}:{p.dtype}" for n, p in module.named_parameters())
        return hashlib.sha256(f"{token}|{shapes}".encode()).hexdigest()

    saved = {m: m.hash_module for m in (dpo, kto)}
    for m in saved:
        m.hash_module = fingerprint
    try:
        yield
    finally:
        for m, original in saved.items():
            m.hash_module = original


@dataclass
class Hardware:
    device: str  # cuda | cpu
    name: str
    gpus: int
    precision: str  # bf16 | fp16 | fp32
    memory_gib: float
    micro_batch_size: int
    accumulation: int
    gradient_checkpointing: bool
    strategy: str = "lora"  # the memory plan's: lora | qlora | full | fsdp
    compiled: bool = False
    fused_kernels: bool = False
    plan: dict | None = None

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def pick_precision(spec: JobSpec) -> str:
    cuda = torch.cuda.is_available()
    return resolve_precision(spec.precision, cuda=cuda, capability_major=torch.cuda.get_device_capability(0)[0] if cuda
                             else None)  # fmt: skip


def pair_activation_bytes(config, max_length: int) -> float:
    """Rough activation memory of one pair (chosen + rejected) without checkpointing: ~34·hidden bytes per token
    per layer in 16-bit (Korthikanti et al. 2022, flash/SDPA attention), plus fp32 logits for the log-softmax."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    vocab = config.vocab_size
    return 2 * max_length * (34 * hidden * layers + 6 * vocab)


def memory_cap_gib() -> float | None:
    """The worker's cap on GPU memory (TRAINING_GPU_MEMORY_GIB, passed as ARBITER_GPU_MEMORY_GIB): a GPU shared with
    another server."""
    raw = os.environ.get("ARBITER_GPU_MEMORY_GIB", "")
    return float(raw) if raw.strip() and float(raw) > 0 else None


def cap_gpu_memory() -> None:
    """Hold this process to the cap (torch raises out-of-memory beyond it, as if the card were that size)."""
    cap = memory_cap_gib()
    if cap and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(cap * GiB / total, 1.0), 0)


def usable_gpu_memory() -> tuple[float, float]:
    """(free, total) bytes of this process's GPU, within the cap."""
    free, total = torch.cuda.mem_get_info(0)
    cap = memory_cap_gib()
    if cap:
        total = min(total, cap * GiB)
        free = min(free, total - torch.cuda.memory_reserved(0))
    return free, total


def plan_batches(spec: JobSpec, config, precision: str, gpus: int, strategy: str = "lora") -> tuple[int, int, bool]:
    """(micro-batch, gradient accumulation, checkpointing) for the spec on this device."""
    if spec.micro_batch_size:
        micro = spec.micro_batch_size
        checkpointing = spec.gradient_checkpointing == "on"
    elif not torch.cuda.is_available():
        micro, checkpointing = min(spec.batch_size, 2), spec.gradient_checkpointing == "on"
    else:
        free, _ = usable_gpu_memory()
        shape = ModelShape.from_config(config.to_dict())
        width = 2 if precision != "fp32" else 4
        weight_bytes = {  # asked before the weights load; full fine-tuning adds gradients and Adam's two moments
            "lora": shape.params * width, "full": shape.params * width * 4,
            "qlora": shape.linear_params * NF4_BYTES + (shape.params - shape.linear_params) * width,
            "fsdp": shape.params * width * 4 / max(gpus, 1),
        }.get(strategy, shape.params * width)  # fmt: skip
        budget = 0.8 * free - weight_bytes
        per_pair = pair_activation_bytes(config, spec.max_length)
        fits = int(budget // per_pair) if budget > 0 else 0
        checkpointing = spec.gradient_checkpointing == "on" or (spec.gradient_checkpointing == "auto" and fits < 1)
        if checkpointing and fits < 1:
            fits = int(budget // (per_pair / config.num_hidden_layers * 2)) if budget > 0 else 1
        micro = 1
        while micro * 2 <= min(fits, spec.batch_size):
            micro *= 2
    per_step = micro * max(gpus, 1)
    accumulation = max(1, math.ceil(spec.batch_size / per_step))
    return micro, accumulation, checkpointing


def memory_plan(spec: JobSpec, model_config, precision: str) -> dict:
    """The worker's plan (ARBITER_MEMORY_PLAN, decided before this process started), or for a standalone run the
    same decision made here with the model's config and this GPU. Raises DoesNotFit with the numbers."""
    given = os.environ.get("ARBITER_MEMORY_PLAN")
    if given:
        return json.loads(given)
    cuda = torch.cuda.is_available()
    have = usable_gpu_memory()[1] / GiB if cuda else None
    quantizable = cuda and importlib.util.find_spec("bitsandbytes") is not None
    return plan_job(spec, ModelShape.from_config(model_config.to_dict()), gpus=int(os.environ.get("WORLD_SIZE", "1")),
                    have_gib=have, precision=precision, quantization_available=quantizable)  # fmt: skip


def detect_hardware(spec: JobSpec, model_config, plan: dict | None = None) -> Hardware:
    precision = pick_precision(spec)
    plan = plan or {}
    if torch.cuda.is_available():
        gpus = int(os.environ.get("WORLD_SIZE", "1"))
        name = torch.cuda.get_device_name(0)
        memory = usable_gpu_memory()[1] / GiB
        device = "cuda"
    else:
        gpus, name, memory, device = 0, "cpu", 0.0, "cpu"
    strategy = plan.get("strategy") or ("lora" if spec.lora else "full")
    micro, accumulation, checkpointing = plan_batches(spec, model_config, precision, gpus, strategy)
    checkpointing = checkpointing or (bool(plan.get("checkpointing")) and spec.gradient_checkpointing != "off")
    return Hardware(device, name, gpus, precision, round(memory, 1), micro, accumulation, checkpointing,
                    strategy=strategy, plan=plan or None)  # fmt: skip


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class QuantizationUnavailable(ValueError):
    """QLoRA was planned but this worker cannot load 4-bit weights (no CUDA GPU or no bitsandbytes)."""


def quantization_config():
    """QLoRA's loading (Dettmers et al. 2023): 4-bit NF4 weights, double quantisation of their scales, bf16 compute."""
    if not torch.cuda.is_available():
        raise QuantizationUnavailable("QLoRA (quantization nf4) needs a CUDA GPU: bitsandbytes' 4-bit kernels do not "
                                      "run here.")  # fmt: skip
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QuantizationUnavailable("QLoRA (quantization nf4) needs the bitsandbytes package on the GPU worker "
                                      "(pip install bitsandbytes).")  # fmt: skip
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)  # fmt: skip


def load_model(path: str, precision: str, device: str, *, reward: bool = False, quantized: bool = False):
    """The causal LM, or for a reward model the same checkpoint as a one-output sequence classifier (a new ``score``
    head; TRL's context hides transformers' warnings about that head and the unused lm_head). ``quantized``: the
    linear layers in 4-bit NF4 (QLoRA), placed on this process's GPU as they load."""
    dtype = DTYPES[precision] if device == "cuda" else torch.float32
    kwargs: dict = {"dtype": dtype}
    if quantized:
        kwargs |= {"quantization_config": quantization_config(),
                   "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}  # fmt: skip
    if reward:
        from transformers import AutoModelForSequenceClassification
        from trl.trainer.reward_trainer import suppress_seqcls_warning

        with suppress_seqcls_warning():
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantized:
        return model
    return model.to(device) if device == "cuda" and not os.environ.get("WORLD_SIZE") else model


def load_tokenizer(path: str):
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class TokenCounter:
    """Wraps the trainer's collator and counts the tokens it hands to the model (attention-mask ones), so the
    callback can report tokens/s for every method alike."""

    def __init__(self, collator):
        self.collator, self.tokens = collator, 0

    def __call__(self, features):
        batch = self.collator(features)
        masks = [v for k, v in batch.items() if k.endswith("attention_mask") and torch.is_tensor(v)]
        if masks:
            self.tokens += int(sum(int(m.sum()) for m in masks))
        else:
            self.tokens += int(
                sum(v.numel() for k, v in batch.items() if k.endswith("input_ids") and torch.is_tensor(v))
            )
        return batch


class ProgressCallback(TrainerCallback):
    """Every logging step to the sink (with tokens/s and device memory) and through the health alarms
    (training.jobs.health); heartbeat and cancel check every step; a few held-out prompts answered at the length
    check steps. An alarm whose policy is stop ends training at that step (every process sees the same gathered
    logs, so all of them stop together)."""

    def __init__(self, sink, counter: TokenCounter | None, *, spec: JobSpec, tokenizer=None,
                 length_prompts: list | None = None):  # fmt: skip
        self.sink, self.counter = sink, counter
        self.cancelled = False
        self._last = (time.monotonic(), 0)
        self.train_started = None
        self.spec, self.tokenizer = spec, tokenizer
        self.length_prompts = length_prompts or []
        self.monitor: HealthMonitor | None = None
        self.check_steps: set[int] = set()
        self.pending_length: float | None = None

    def _answer_tokens(self, model) -> float:
        was_training = model.training
        model.eval()
        try:
            lengths = answer_lengths(model, self.tokenizer, self.length_prompts, self.spec.eval_max_new_tokens)
        finally:
            model.train(was_training)
        return sum(lengths) / len(lengths)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.monitor = HealthMonitor(self.spec, max_steps=state.max_steps)
        if self.length_prompts and model is not None and self.spec.length_checks:
            self.sink.progress(0, state.max_steps, "answering held-out prompts (length check)")
            self.check_steps = length_check_steps(self.spec.length_checks, state.max_steps)
            self.monitor.observe_lengths(0, self._answer_tokens(model))
        self.train_started = time.monotonic()
        self._last = (self.train_started, self.counter.tokens if self.counter else 0)
        self.sink.progress(0, state.max_steps, "training")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.sink.progress(state.global_step, state.max_steps, "training")
        if state.global_step in self.check_steps and model is not None:
            self.pending_length = self._answer_tokens(model)
        if self.sink.cancel_requested():
            self.cancelled = True
            control.should_training_stop = True

    @property
    def stopped(self):
        """The alarm that stopped the run, if one did."""
        return self.monitor.stop if self.monitor is not None else None  # None: training never began

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "train_runtime" in logs:
            return  # the run's summary, not a step: it goes to the job's summary
        values, alarms = self.monitor.observe(state.global_step, logs or {})
        if self.pending_length is not None:
            values["answer_tokens"] = self.pending_length
            alarms += self.monitor.observe_lengths(state.global_step, self.pending_length)
            self.pending_length = None
        behind = self.sink.trailing(state.global_step, state.max_steps, values)  # a sweep's early termination
        if behind is not None:
            self.monitor.fired.append(behind)
            alarms.append(behind)
        for alarm in alarms:
            self.sink.alarm(alarm.as_dict())
            if alarm.policy == "stop":
                control.should_training_stop = True
        now = time.monotonic()
        if self.counter is not None:
            then, tokens = self._last
            if now > then:
                values["tokens_per_s"] = (self.counter.tokens - tokens) / (now - then)
            self._last = (now, self.counter.tokens)
            values["tokens_total"] = float(self.counter.tokens)
        if torch.cuda.is_available():
            values["gpu_memory_gib"] = torch.cuda.max_memory_allocated() / GiB
        values["elapsed_s"] = now - (self.train_started or now)
        self.sink.metrics(state.global_step, values)


def _columns_for_training(dataset, method: str):
    keep = {
        "kto": {"prompt", "completion", "label"},
        "reward": {"chosen_ids", "rejected_ids", "margin"},  # already tokenized; margin only when the spec uses it
    }.get(method, {"prompt", "chosen", "rejected"})
    return dataset.remove_columns([c for c in dataset.column_names if c not in keep])


def planned_steps(spec: JobSpec, rows: int) -> int:
    """Optimizer steps the run will take (before any cancel)."""
    if spec.max_steps:
        return spec.max_steps
    return math.ceil(math.ceil(rows / spec.batch_size) * spec.epochs)


def build_trainer(spec: JobSpec, hw: Hardware, model, tokenizer, train_data, out_dir: Path, callbacks,
                  ref_model=None):  # fmt: skip
    lr, beta = spec.resolved_learning_rate(), spec.resolved_beta()
    common = {
        "output_dir": str(out_dir / "checkpoints"),
        "learning_rate": lr,
        "num_train_epochs": spec.epochs,
        "max_steps": spec.max_steps or -1,
        "warmup_steps": spec.warmup_ratio,
        "per_device_train_batch_size": hw.micro_batch_size,
        "gradient_accumulation_steps": hw.accumulation,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "seed": spec.seed,
        "data_seed": spec.seed,
        "bf16": hw.precision == "bf16" and hw.device == "cuda",
        "fp16": hw.precision == "fp16" and hw.device == "cuda",
        "use_cpu": hw.device == "cpu",
        "max_length": spec.max_length,
        "lr_scheduler_type": "cosine",
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
        "torch_compile": False,  # compiled per decoder layer instead (compile_layers), after the trainer is built
    }
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__  # transformers 5.2x renamed gradient_ to activation_checkpointing
    checkpoint_field = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    common[checkpoint_field] = hw.gradient_checkpointing
    peft_config = None
    if spec.lora and not spec.init_adapter:  # a continued adapter arrives on the model already
        from peft import LoraConfig

        targets = spec.lora_target_modules.strip()
        # SEQ_CLS: PEFT trains the reward model's new score head in full and saves it with the adapter
        peft_config = LoraConfig(
            r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
            task_type="CAUSAL_LM" if spec.is_policy else "SEQ_CLS",
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
        )  # fmt: skip
    precompute = {"precompute_ref_log_probs": True, "precompute_ref_batch_size": max(hw.micro_batch_size * 2, 1)}
    train_data = _columns_for_training(train_data, spec.method)
    if spec.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        losses, weights = [spec.loss_type], None
        if spec.rpo_alpha:  # RPO: TRL 1.16 has no rpo_alpha; its "sft" loss on the chosen answers is the same term
            losses, weights = [spec.loss_type, "sft"], [1.0, spec.rpo_alpha]
        args = DPOConfig(**common, **precompute, beta=beta, loss_type=losses, loss_weights=weights,
                         label_smoothing=spec.label_smoothing, ld_alpha=spec.ld_alpha,
                         use_weighting=spec.use_weighting, use_liger_kernel=hw.fused_kernels)  # fmt: skip
        trainer_cls = DPOTrainer
        extra = {"ref_model": ref_model} if ref_model is not None else {}
    elif spec.method == "kto":
        from trl import KTOConfig, KTOTrainer

        labels = train_data["label"]
        desirable, undesirable = sum(map(bool, labels)), len(labels) - sum(map(bool, labels))
        dw, uw = kto_weights(spec, desirable, undesirable)
        args = KTOConfig(**common, **precompute, beta=beta, desirable_weight=dw, undesirable_weight=uw)
        trainer_cls = KTOTrainer
        extra = {"ref_model": ref_model} if ref_model is not None else {}
    elif spec.method == "reward":
        from trl import RewardConfig, RewardTrainer

        args = RewardConfig(**common, center_rewards_coefficient=spec.resolved_center_rewards())
        trainer_cls = RewardTrainer
        extra = {}
    elif spec.method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, beta=beta)
        trainer_cls = ORPOTrainer
        extra = {}
    else:  # simpo: CPO with the SimPO loss and no behaviour-cloning term
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(**common, beta=beta, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=spec.simpo_gamma)
        trainer_cls = CPOTrainer
        extra = {}
    trainer = trainer_cls(model=model, args=args, train_dataset=train_data, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=callbacks, **extra)  # fmt: skip
    return trainer, args


def uses_fused_kernels(spec: JobSpec, device: str) -> bool:
    """Liger's Triton kernels (RMSNorm, SwiGLU, RoPE; TRL's DPO keeps its own fused log-prob head): DPO on a GPU where
    liger-kernel is installed, unless turned off; "on" without the package fails with the reason."""
    if spec.fused_kernels == "off" or spec.method != "dpo" or device != "cuda":
        return False
    available = importlib.util.find_spec("liger_kernel") is not None
    if spec.fused_kernels == "on" and not available:
        raise ValueError("fused_kernels on needs the liger-kernel package on the GPU worker (pip install "
                         "liger-kernel).")  # fmt: skip
    return available


def compile_layers(model) -> int:
    """Regional compilation: torch.compile each decoder layer (the model's ``_no_split_modules`` classes) instead of
    the whole model. The layers share one compiled graph, so compiling costs about one layer's worth, and the
    compiled code is cached on the worker (TORCHINDUCTOR_CACHE_DIR) for the next job of the same shape. Returns
    the number of layers compiled."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    count = 0
    for module in base.modules():
        if type(module).__name__ in names:
            module.compile()
            count += 1
    return count


def continued(spec: JobSpec, model, load_base):
    """(policy, reference model or None) for a run that continues an adapter (spec.init_adapter): the adapter is
    loaded trainable on the base model. The reference is TRL's: with a PEFT model and no reference model, DPO and
    KTO freeze a copy of the loaded adapter ("previous": the adapter's own model); "initial" passes the base model
    without any adapter instead. Without init_adapter: the model as loaded, and TRL's usual reference."""
    if not spec.init_adapter:
        return model, None
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, spec.init_adapter, is_trainable=True)
    if spec.reference == "initial" and spec.needs_reference:
        return model, load_base()
    return model, None


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def train(spec: JobSpec, data_dir: Path, model_path: str, out_dir: Path, sink, *, context: dict) -> dict:
    """Run the job; returns {state, summary, hardware, evaluation, artifacts}. ``context`` names the export for the
    model card. Raises on failure (the runner records the error)."""
    from datasets import load_from_disk

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.manual_seed(spec.seed)
    sink.progress(0, 0, "loading the data")
    data = load_from_disk(str(data_dir))
    if "train" not in data or len(data["train"]) == 0:
        raise ValueError("The export's training split is empty: nothing to train on.")
    sink.progress(0, 0, "loading the model")
    from transformers import AutoConfig

    cap_gpu_memory()
    try:
        model_config = AutoConfig.from_pretrained(model_path)
    except Exception as exc:
        raise ModelLoadError(spec.base_model, exc) from exc
    plan = memory_plan(spec, model_config, pick_precision(spec))  # DoesNotFit: the job fails with the numbers
    hw = detect_hardware(spec, model_config, plan)
    quantized = hw.strategy == "qlora"
    hw.fused_kernels = uses_fused_kernels(spec, hw.device)
    try:
        tokenizer = load_tokenizer(model_path)
        model = load_model(model_path, hw.precision, hw.device, reward=not spec.is_policy, quantized=quantized)
        if not spec.is_policy:  # the classifier reads the reward at the last token that is not padding
            model.config.pad_token_id = tokenizer.pad_token_id
        model, ref_model = continued(spec, model, lambda: load_model(model_path, hw.precision, hw.device,
                                                                     quantized=quantized))  # fmt: skip
    except QuantizationUnavailable:
        raise  # said as it is, not as a model that failed to load
    except Exception as exc:
        raise ModelLoadError(spec.base_model, exc) from exc
    sink.hardware(hw.as_dict())
    train_data, dropped = data["train"], 0
    if not spec.is_policy:
        from trl.trainer.utils import global_then_local_main_first

        sink.progress(0, 0, "tokenizing the pairs")
        with global_then_local_main_first():  # as TRL maps: one process writes the datasets cache, the others read it
            train_data, dropped = reward_rows(train_data, tokenizer, max_length=spec.max_length,
                                              margin=spec.reward_margin)  # fmt: skip
    answers = "test" in data and spec.length_checks and spec.is_policy  # a reward model answers nothing
    length_prompts = test_prompts(data["test"], 4) if answers else []
    progress = ProgressCallback(sink, None, spec=spec, tokenizer=tokenizer, length_prompts=length_prompts)
    sink.progress(0, 0, "preparing the data" + (" and reference log-probs" if spec.needs_reference else ""))
    started = time.monotonic()
    with reference_fingerprint(str(out_dir.resolve())):
        trainer, args = build_trainer(spec, hw, model, tokenizer, train_data, out_dir, [progress], ref_model)
    if hw.device == "cuda" and spec.compiles(planned_steps(spec, len(train_data))):
        hw.compiled = compile_layers(trainer.model) > 0
        sink.hardware(hw.as_dict())
    counter = TokenCounter(trainer.data_collator)
    trainer.data_collator = counter
    progress.counter = counter
    prepare_seconds = time.monotonic() - started  # tokenising (and, where precomputed, reference log-probs)
    started = time.monotonic()
    result = trainer.train()
    train_seconds = time.monotonic() - started
    stopped = progress.stopped
    state = "cancelled" if progress.cancelled else "stopped" if stopped else "succeeded"
    summary = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
    history = [h for h in trainer.state.log_history if "loss" in h]
    if history:
        summary.update({f"final/{k}": float(v) for k, v in history[-1].items() if isinstance(v, (int, float))})
    summary |= {"steps": trainer.state.global_step, "prepare_seconds": prepare_seconds, "train_seconds": train_seconds,
                "tokens": counter.tokens,
                "tokens_per_s": counter.tokens / train_seconds if train_seconds else 0.0}  # fmt: skip
    if not spec.is_policy:
        summary |= {"rows_trained": len(train_data), "rows_dropped_too_long": dropped}
    if torch.cuda.is_available():
        summary["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / GiB
    is_main = trainer.accelerator.is_main_process
    sink.progress(trainer.state.global_step, trainer.state.max_steps, "saving the adapter" if spec.lora else
                  "saving the model")  # fmt: skip
    weights_dir = out_dir / ("adapter" if spec.lora else "model")
    if "ref" in (getattr(trainer.model, "peft_config", None) or {}):
        trainer.model.delete_adapter("ref")  # TRL's frozen copy of a continued adapter: not part of the result
    trainer.save_model(str(weights_dir))
    if is_main:
        tokenizer.save_pretrained(str(weights_dir))
    evaluation = {}
    if state in ("succeeded", "stopped") and is_main and "test" in data and (spec.eval_pairs or spec.eval_generations):
        sink.progress(trainer.state.global_step, trainer.state.max_steps, "evaluating on the test split")
        if spec.is_policy:
            base_loader = None if spec.lora else (lambda: load_model(model_path, hw.precision, hw.device))
            evaluation = evaluate(trainer.model, tokenizer, data["test"], spec, base_loader=base_loader)
        else:
            evaluation = evaluate_reward(trainer.model, tokenizer, data["test"], spec)
    versions = library_versions()
    alarms = [a.as_dict() for a in progress.monitor.fired] if progress.monitor else []
    card = model_card(spec=spec, context=context, hardware=hw.as_dict(), summary=summary, evaluation=evaluation,
                      versions=versions, state=state, args=args, alarms=alarms)  # fmt: skip
    if is_main:
        (weights_dir / "README.md").write_text(card)
        (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2, sort_keys=True))
    return {"state": state, "summary": summary, "hardware": hw.as_dict(), "evaluation": evaluation,
            "model_card": card, "weights_dir": weights_dir, "versions": versions, "alarms": alarms,
            "stop_reason": f"{stopped.title} at step {stopped.step} ({stopped.value} {stopped.threshold})"
            if stopped else ""}  # fmt: skip
