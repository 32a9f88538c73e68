"""The local model server of `make run`: where its state is written (by the devserver command that builds and starts
it) and read (by the pages that show it). A file under VAR_DIR, so every process of `make run` sees the same state.

States: ``building`` (the llama.cpp wheel, the model file and the training requirements are being installed; the
first time takes minutes), ``starting``, ``ready``, ``failed`` (with the reason; the log says more), ``stopped``.
No state file: `make run` is not running here (a deployment points its judges at real servers instead)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings

from .logs import file_tail

STATES = ("building", "starting", "ready", "failed", "stopped")
LOG_TAIL_CHARS = 4000


def local_model_dir() -> Path:
    return Path(settings.VAR_DIR) / "local-model"


def state_write(state: str, detail: str = "") -> None:
    """Record the state (atomically: readers never see half a file)."""
    if state not in STATES:
        raise ValueError(f"not a local model state: {state}")
    folder = local_model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = {"state": state, "detail": detail, "url": settings.LOCAL_MODEL_URL, "model": str(settings.LOCAL_MODEL_PATH)}
    partial = folder / "state.json.partial"
    partial.write_text(json.dumps(data))
    os.replace(partial, folder / "state.json")


def log_path() -> Path:
    return local_model_dir() / "local-model.log"


def local_model_status() -> dict | None:
    """{state, detail, url, model, log_tail} while `make run` manages a local model here, else None."""
    try:
        data = json.loads((local_model_dir() / "state.json").read_text())
    except (OSError, ValueError):
        return None
    data["log_tail"] = file_tail(log_path(), LOG_TAIL_CHARS)
    return data
