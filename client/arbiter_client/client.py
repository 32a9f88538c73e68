"""A thin typed wrapper over Arbiter's REST API (/api/v1/), on httpx2 (httpx's successor, which openai and
huggingface_hub use too).

Hand-written rather than generated from the OpenAPI schema: the API is small, and what a notebook needs on top of
the endpoints is behaviour a generator does not write — uploading a list of dicts as a file, waiting for queued work,
following a training job's metrics, streaming files to disk, loading an export as a ``datasets.DatasetDict``. The
server's OpenAPI test and this package's live-server test keep the two in step.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx

from .errors import ArbiterError, TimedOut

# The states after which a queued thing does not change any more, per kind.
_ENDED = {
    "import": {"succeeded", "failed"},
    "judge_run": {"succeeded", "cancelled", "budget", "failed", "paused"},
    "export": {"succeeded", "failed"},
    "job": {"succeeded", "stopped", "failed", "cancelled"},
    "hub_push": {"succeeded", "failed"},
}


class Arbiter:
    """The API at ``url`` (default ``$ARBITER_URL``) with an API token (default ``$ARBITER_TOKEN``; an admin creates
    one in the admin, or ``python manage.py drf_create_token <username>``)."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        url = url or os.environ.get("ARBITER_URL") or "http://127.0.0.1:8000"
        token = token or os.environ.get("ARBITER_TOKEN")
        if not token:
            raise ArbiterError(0, "No API token: pass token= or set ARBITER_TOKEN.")
        self.http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1/",
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self.poll_seconds = 1.0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Arbiter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs) -> Any:
        """One call; the decoded JSON body (None for 204). Raises ArbiterError with the server's message."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ArbiterError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def download(self, path: str, dest: str | os.PathLike, *, params: dict | None = None) -> Path:
        """Stream a file the API serves to ``dest`` (a file path, or a folder to keep the server's file name)."""
        dest = Path(dest)
        with self.http.stream("GET", path, params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise ArbiterError.from_response(response)
            if dest.is_dir():
                disposition = response.headers.get("content-disposition", "")
                name = disposition.split("filename=")[-1].strip('"') if "filename=" in disposition else "download"
                dest = dest / Path(name).name
            with open(dest, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        return dest

    def wait(self, path: str, kind: str, *, timeout: float = 3600.0) -> dict:
        """GET ``path`` until its ``state`` ends (see _ENDED); the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.request("GET", path)
            if body["state"] in _ENDED[kind]:
                return body
            if time.monotonic() > deadline:
                raise TimedOut(f"{path} still {body['state']} after {timeout:.0f} s")
            time.sleep(self.poll_seconds)

    # --- projects ----------------------------------------------------------------------------------------------------

    def projects(self) -> list[dict]:
        return self.request("GET", "projects/")

    def project(self, slug: str) -> Project:
        """An existing project (404 → ArbiterError if you may not see it)."""
        return Project(self, self.request("GET", f"projects/{slug}/"))

    def create_project(self, *, name: str, slug: str, guidelines: str = "", **settings) -> Project:
        """A new project you lead. ``settings``: overlap_k, strength_scale, calibration_rate, practice_items, ... (the
        fields of GET projects/<slug>/)."""
        body = {"name": name, "slug": slug, "guidelines": guidelines, **settings}
        return Project(self, self.request("POST", "projects/", json=body))

    # --- training (admins) -------------------------------------------------------------------------------------------

    def launch_job(self, export: str | Export, *, preset: str = "dpo-lora", name: str = "",
                   settings: dict | None = None) -> Job:  # fmt: skip
        """Queue a training job on an export (its id or the Export). ``settings``: JobSpec fields to change from the
        preset (base_model, max_steps, beta, ...)."""
        export_id = export.id if isinstance(export, Export) else str(export)
        body = {"export": export_id, "preset": preset, "name": name, "settings": settings or {}}
        return Job(self, self.request("POST", "training/jobs/", json=body))

    def job(self, job_id: str) -> Job:
        return Job(self, self.request("GET", f"training/jobs/{job_id}/"))


class _Resource:
    """An API object: its last-read fields in ``.data`` (also as ``obj["field"]``), and the client."""

    def __init__(self, api: Arbiter, data: dict) -> None:
        self.api, self.data = api, data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __repr__(self) -> str:
        ident = self.data.get("id") or self.data.get("slug")
        return f"<{type(self).__name__} {ident} {self.data.get('state', '')}>".replace(" >", ">")


class Project(_Resource):
    @property
    def slug(self) -> str:
        return self.data["slug"]

    @property
    def path(self) -> str:
        return f"projects/{self.slug}/"

    def refresh(self) -> Project:
        self.data = self.api.request("GET", self.path)
        return self

    def update(self, **settings) -> Project:
        """Change settings (leads), as the settings page does."""
        self.data = self.api.request("PATCH", self.path, json=settings)
        return self

    # imports

    def import_file(self, path: str | os.PathLike, *, format: str | None = None, wait: bool = True,
                    ultrafeedback_pairs: str = "all") -> dict:  # fmt: skip
        """Import a JSONL/JSON/CSV/Parquet file of pairs (format: pairs, dpo or ultrafeedback; detected when None).
        Waits for a queued import unless ``wait=False``. Raises ArbiterError listing the bad rows when it fails."""
        path = Path(path)
        with open(path, "rb") as fh:
            return self._import(path.name, fh, format, wait, ultrafeedback_pairs)

    def import_records(self, records: Iterable[dict], *, format: str | None = None, wait: bool = True,
                       ultrafeedback_pairs: str = "all") -> dict:  # fmt: skip
        """Import a list of dicts (each one a row of the file formats: prompt, response_a, response_b, ...)."""
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        return self._import("records.jsonl", io.BytesIO(payload), format, wait, ultrafeedback_pairs)

    def _import(self, filename, fh, fmt, wait, ultrafeedback_pairs) -> dict:
        data = {"ultrafeedback_pairs": ultrafeedback_pairs, **({"format": fmt} if fmt else {})}
        response = self.api.http.post(f"{self.path}imports/", files={"file": (filename, fh)}, data=data)
        body = response.json() if response.content else {}
        if response.status_code == 400 and body.get("state") == "failed":
            raise ArbiterError(400, _import_errors(body), body)
        if response.status_code >= 400:
            raise ArbiterError.from_response(response)
        if wait and body["state"] not in _ENDED["import"]:
            body = self.api.wait(f"{self.path}imports/{body['id']}/", "import")
            if body["state"] == "failed":
                raise ArbiterError(400, _import_errors(body), body)
        return body

    def imports(self) -> list[dict]:
        return self.api.request("GET", f"{self.path}imports/")

    # people and guidelines

    def members(self) -> list[dict]:
        return self.api.request("GET", f"{self.path}members/")

    def add_member(self, user: str, role: str = "annotator") -> dict:
        """Add someone by username or email (``@`` in it) with a role (annotator or lead)."""
        who = {"email": user} if "@" in user else {"username": user}
        return self.api.request("POST", f"{self.path}members/", json={**who, "role": role})

    def set_role(self, user_id: int, role: str) -> dict:
        return self.api.request("PATCH", f"{self.path}members/{user_id}/", json={"role": role})

    def remove_member(self, user_id: int) -> None:
        self.api.request("DELETE", f"{self.path}members/{user_id}/")

    def reinstate(self, user_id: int) -> dict:
        """Let a paused annotator work again."""
        return self.api.request("POST", f"{self.path}members/{user_id}/reinstate/")

    def guidelines(self) -> list[dict]:
        """Guideline versions, newest first."""
        return self.api.request("GET", f"{self.path}guidelines/")

    def set_guidelines(self, body: str) -> dict:
        """A new guideline version, in Markdown (labels record the version they were given under)."""
        return self.api.request("POST", f"{self.path}guidelines/", json={"body": body})

    # progress and quality

    def progress(self) -> dict:
        return self.api.request("GET", f"{self.path}progress/")

    def quality(self, space: str = "with_ties") -> dict:
        """Agreement (Cohen's and Fleiss' kappa, Krippendorff's alpha with CIs) and per-annotator audits."""
        return self.api.request("GET", f"{self.path}quality/", params={"space": space})

    # pairs and labels

    def pairs(self, *, page_size: int = 500, **filters) -> Iterator[dict]:
        """Every pair matching ``filters`` (labelled, complete, calibration, source, has_judge), following the
        cursor pages."""
        params: dict | None = {"page_size": page_size, **{k: _param(v) for k, v in filters.items()}}
        url = f"{self.path}pairs/"
        while url:
            page = self.api.request("GET", url, params=params)
            yield from page["results"]
            url, params = page.get("next"), None  # the next link carries the filters and the cursor

    def pair(self, pair_id: int) -> dict:
        """One pair with its labels and judge verdicts."""
        return self.api.request("GET", f"{self.path}pairs/{pair_id}/")

    def mark_calibration(self, pair_id: int, gold: str, explanation: str = "") -> dict:
        """Make a pair a calibration pair with its expected answer (A, B or tie)."""
        return self.api.request("PUT", f"{self.path}pairs/{pair_id}/calibration/",
                                json={"gold": gold, "explanation": explanation})  # fmt: skip

    def unmark_calibration(self, pair_id: int) -> None:
        self.api.request("DELETE", f"{self.path}pairs/{pair_id}/calibration/")

    def download_labels(self, dest: str | os.PathLike, *, format: str = "parquet", pseudonymize: bool = False) -> Path:
        """Every label of the project (raw, one row each) as JSONL or Parquet, streamed to ``dest``."""
        params = {"format": format, "pseudonymize": _param(pseudonymize)}
        return self.api.download(f"{self.path}labels/", dest, params=params)

    # judges

    def judges(self) -> list[dict]:
        return self.api.request("GET", f"{self.path}judges/")

    def create_judge(self, *, name: str, base_url: str, model: str, api_key_env: str = "", **settings) -> dict:
        """An LLM judge on any OpenAI-compatible server. The key is read on the workers from the environment variable
        named ``api_key_env``; it is never sent here."""
        body = {"kind": "llm", "name": name, "base_url": base_url, "model": model, "api_key_env": api_key_env,
                **settings}  # fmt: skip
        return self.api.request("POST", f"{self.path}judges/", json=body)

    def run_judge(self, judge_id: str, *, only_unlabelled: bool = False, limit: int | None = None,
                  wait: bool = True, timeout: float = 3600.0) -> dict:  # fmt: skip
        """Judge the project's pairs (queued on the judge workers); waits for the run to end unless ``wait=False``."""
        body = {"judge": str(judge_id), "only_unlabelled": only_unlabelled, "limit": limit}
        run = self.api.request("POST", f"{self.path}judge-runs/", json=body)
        if wait:
            run = self.api.wait(f"{self.path}judge-runs/{run['id']}/", "judge_run", timeout=timeout)
        return run

    def judge_run(self, run_id: str) -> dict:
        return self.api.request("GET", f"{self.path}judge-runs/{run_id}/")

    # curation and export

    def recipes(self) -> list[dict]:
        return self.api.request("GET", f"{self.path}recipes/")

    def preview(self, config: dict) -> dict:
        """What a recipe config would produce now (funnel, margins); nothing saved."""
        return self.api.request("POST", f"{self.path}recipes/preview/", json=config)

    def save_recipe(self, name: str, config: dict) -> dict:
        """Save a curation recipe; a changed config becomes the name's next version."""
        return self.api.request("POST", f"{self.path}recipes/", json={"name": name, "config": config})

    def export(self, recipe: dict | int, *, format: str = "dpo", conversational: bool = False,
               test_fraction: float = 0.1, seed: int = 0, wait: bool = True) -> Export:  # fmt: skip
        """Export a recipe version (the dict save_recipe returned, or its id) as TRL-ready train/test files."""
        recipe_id = recipe["id"] if isinstance(recipe, dict) else int(recipe)
        body = {"recipe": recipe_id, "format": format, "conversational": conversational,
                "test_fraction": test_fraction, "seed": seed}  # fmt: skip
        export = Export(self, self.api.request("POST", f"{self.path}exports/", json=body), self.slug)
        return export.wait() if wait else export

    def exports(self) -> list[Export]:
        return [Export(self, e, self.slug) for e in self.api.request("GET", f"{self.path}exports/")]


class Export(_Resource):
    def __init__(self, owner: Project | Arbiter, data: dict, slug: str) -> None:
        super().__init__(owner.api if isinstance(owner, Project) else owner, data)
        self.slug = slug

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def path(self) -> str:
        return f"projects/{self.slug}/exports/{self.id}/"

    def refresh(self) -> Export:
        self.data = self.api.request("GET", self.path)
        return self

    def wait(self, timeout: float = 3600.0) -> Export:
        self.data = self.api.wait(self.path, "export", timeout=timeout)
        if self.data["state"] == "failed":
            raise ArbiterError(0, f"export {self.id} failed: {self.data.get('error')}", self.data)
        return self

    def download(self, name: str, dest: str | os.PathLike) -> Path:
        """One of the export's files (train.parquet, test.jsonl, hf.zip, datasheet.md, ...) to ``dest``."""
        return self.api.download(f"{self.path}files/{name}", dest)

    def load_dataset(self, folder: str | os.PathLike | None = None):
        """The export as a ``datasets.DatasetDict`` (train, and test when the export has one), from its Parquet
        files downloaded to ``folder`` (a temporary folder by default)."""
        import tempfile

        import datasets  # an optional dependency: pip install "./client[datasets]"

        folder = Path(folder or tempfile.mkdtemp(prefix=f"arbiter-{self.id}-"))
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for split in ("train", "test"):
            if f"{split}.parquet" in self.data["files"]:
                files[split] = str(self.download(f"{split}.parquet", folder / f"{split}.parquet"))
        return datasets.load_dataset("parquet", data_files=files)

    def push_to_hub(self, repo_id: str, *, private: bool = True, token_env: str = "HF_TOKEN", wait: bool = True,
                    timeout: float = 3600.0) -> dict:  # fmt: skip
        """Push the export to a Hugging Face dataset repo, the datasheet as its card. The token is read on the server
        from the environment variable named ``token_env``; it is never sent from here."""
        body = {"repo_id": repo_id, "private": private, "token_env": token_env}
        push = self.api.request("POST", f"{self.path}push/", json=body)
        if wait:
            push = self.api.wait(f"{self.path}push/?repo_id={repo_id}", "hub_push", timeout=timeout)
            if push["state"] == "failed":
                raise ArbiterError(0, f"push to {repo_id} failed: {push.get('error')}", push)
        return push


class Job(_Resource):
    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def path(self) -> str:
        return f"training/jobs/{self.id}/"

    def refresh(self) -> Job:
        self.data = self.api.request("GET", self.path)
        return self

    def follow(self, *, timeout: float = 24 * 3600.0) -> Iterator[dict]:
        """Yield each new metric row (step, loss, rewards/margins, ...) as the job logs it, until the job ends; then
        refresh ``.data``."""
        deadline, after = time.monotonic() + timeout, -1
        while True:
            progress = self.api.request("GET", f"{self.path}progress/", params={"after": after})
            for row in progress["metrics"]:
                after = max(after, row["step"])
                yield row
            if not progress["live"]:
                break
            if time.monotonic() > deadline:
                raise TimedOut(f"job {self.id} still {progress['state']} after {timeout:.0f} s")
            time.sleep(self.api.poll_seconds)
        self.refresh()

    def wait(self, timeout: float = 24 * 3600.0) -> Job:
        self.data = self.api.wait(self.path, "job", timeout=timeout)
        return self

    def cancel(self) -> Job:
        self.data = self.api.request("POST", f"{self.path}cancel/")
        return self

    def download(self, name: str, dest: str | os.PathLike) -> Path:
        """One of the job's artifacts (see ``job["artifacts"]``) to ``dest``."""
        return self.api.download(f"{self.path}files/{name}", dest)


def _param(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _import_errors(body: dict) -> str:
    lines = [f"import of {body.get('filename')} failed ({body.get('error_count', 0)} errors):"]
    for error in (body.get("errors") or [])[:20]:
        lines.append("  " + (json.dumps(error) if not isinstance(error, str) else error))
    return "\n".join(lines)
