"""Where a model comes from (a training job's base model, a local generator's, a reward model's): a local checkpoint
folder, a local GGUF file (converted once to a plain checkpoint in a cache folder), or a Hugging Face hub id. torch
is loaded lazily, by the training runner, local generation and reward scoring only (gpu queue workers);
``describe_base_model`` is what the web process uses to validate a name before a job or run is queued."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def describe_base_model(name: str) -> str:
    """'local' (a folder with config.json), 'gguf' (a .gguf file) or 'hub' (a well-formed hub id, checked against the
    hub only when a worker loads it). Raises ValueError with the reason otherwise."""
    name = name.strip()
    if not name:
        raise ValueError("Name a base model: a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct or a local path.")
    path = Path(name)
    if path.is_absolute() or name.startswith((".", "~")):
        path = path.expanduser()
        try:
            if path.is_file() and path.suffix == ".gguf":
                return "gguf"
            if path.is_dir() and (path / "config.json").is_file():
                return "local"
            adapter = path.is_dir() and (path / "adapter_config.json").is_file()
        except OSError as exc:  # a name too long for the filesystem, say
            raise ValueError(f"{name[:200]}: not a usable path ({exc.strerror}).") from exc
        if adapter:
            raise ValueError(f"{name} is a LoRA adapter; name the model it was trained from.")
        raise ValueError(f"{name}: no such model folder (a folder with config.json) or .gguf file.")
    if HUB_ID.match(name) and ".." not in name:
        return "hub"
    raise ValueError(f"{name!r} is neither an absolute path nor a hub id of the form owner/name.")


def gguf_checkpoint(gguf: Path, cache_root: Path) -> Path:
    """A plain (unquantized) checkpoint folder for a GGUF file, built on first use: transformers dequantizes the
    file, but Trainer refuses that object, so a model is rebuilt from its config without the quantization settings,
    loaded with the weights and saved once. Later calls return the cached folder."""
    digest = hashlib.sha256(f"{gguf.resolve()}:{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}".encode())
    target = cache_root / f"{gguf.stem}-{digest.hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), strict=False)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # other jobs never see a half-written folder
    return target


def resolve_base_model(name: str, cache_root: Path) -> str:
    """What ``from_pretrained`` should be given for this base model."""
    kind = describe_base_model(name)
    if kind == "gguf":
        return str(gguf_checkpoint(Path(name).expanduser(), cache_root))
    return str(Path(name).expanduser()) if kind == "local" else name.strip()


def model_identity(model_name: str, adapter: str) -> str:
    """What wrote a candidate: the model's name, and with an adapter a digest of its weights (so a candidate says
    which round's adapter wrote it, even after the folder was trained further or replaced)."""
    if not adapter:
        return model_name
    folder = Path(adapter).expanduser()
    digest = hashlib.sha256()
    for weights in sorted(folder.glob("adapter_model.*")):
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{Path(model_name).name or model_name}+lora:{digest.hexdigest()[:16]}"
