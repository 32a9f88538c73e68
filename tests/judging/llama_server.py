"""A real OpenAI-compatible server with a real model: llama.cpp's server (llama-cpp-python) serving SmolLM2-135M,
started on a free port for the session and stopped by PID. `make judge-server` installs both."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.services import require
from tests.worker import free_port

ROOT = Path(__file__).resolve().parents[2]
_REQUEST_LINE = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})')


@dataclass
class LlamaServer:
    base_url: str
    log_path: Path
    process: subprocess.Popen

    def requests_received(self) -> int:
        """Chat-completion requests the server has answered so far (from its access log)."""
        return len(_REQUEST_LINE.findall(self.log_path.read_text(errors="replace")))


def start_llama_server(log_dir: Path) -> LlamaServer:
    require(importlib.util.find_spec("llama_cpp") is not None,
            "llama-cpp-python is not installed: run `make judge-server`")  # fmt: skip
    model = settings.LOCAL_MODEL_PATH  # the file `make judge-server` unzips, which `make run` serves too
    require(model.exists(), f"{model} is missing: run `make judge-server`")
    port = free_port()
    log_path = log_dir / f"llama-server-{port}.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "2"],  # fmt: skip
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp server exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
                if r.status == 200:
                    return LlamaServer(base_url, log_path, process)
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail(f"llama.cpp server did not come up in 120 s; see {log_path}")


def stop(server: LlamaServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
