"""An export on the Hugging Face Hub: a worker pushes a finished export's files to a dataset repo (create the repo,
then one commit through huggingface_hub), with its datasheet as the dataset card. training.services.hub queues a
push; hub_push_run is what the task runs. The token is read from the environment variable the push names, on the
worker, and goes nowhere else: not the database, not a log, not an error message."""

from __future__ import annotations

import logging
import os
import re
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import HubPush
from ..storage import export_file

logger = logging.getLogger(__name__)

# owner/name as the Hub accepts them (huggingface_hub.utils.validate_repo_id, without importing the library here)
REPO_ID = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$"
)

# The Parquet splits are the Hub's own format (its viewer and load_dataset find the split in the name);
# datasheet.json holds the card's facts for programs. JSONL, CSV and the datasets folder stay downloads.
PUSHED = {"train.parquet": "data/train.parquet", "test.parquet": "data/test.parquet",
          "datasheet.json": "datasheet.json"}  # fmt: skip

# A push still "running" this long after it started lost its worker (the task is delivered again after the broker's
# visibility timeout): the redelivered task may take it over. Above the task's time limit.
STALE_AFTER = timedelta(hours=1, minutes=5)


class HubRefused(Exception):
    """A push we will not make (the message says why); the Hub's own refusals are huggingface_hub's errors."""


def repo_id_problem(repo_id: str) -> str | None:
    if not REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        return "Give the dataset repo as owner/name (letters, digits, '-', '_' and '.')."
    return None


def hub_files(export) -> list[tuple[str, Path]]:
    """(path in the repo, file on disk) for the export's files that go to the Hub."""
    return [(in_repo, path) for name, in_repo in PUSHED.items() if (path := export_file(export, name)) is not None]


def hub_upload(*, repo_id: str, private: bool, token: str, readme: str, files: list[tuple[str, Path]], message: str,
               endpoint: str | None = None) -> dict:  # fmt: skip
    """Create the dataset repo (or find it) and commit README.md and the files in one commit. Returns the repo's
    and the commit's URLs. A repo that already exists keeps its visibility: asked for a private push, a public one
    is refused before anything is uploaded."""
    from huggingface_hub import CommitOperationAdd, HfApi  # here: the web process never loads the library

    api = HfApi(endpoint=endpoint or None, token=token)
    repo = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if private and api.repo_info(repo_id, repo_type="dataset").private is False:
        raise HubRefused(f"{repo_id} already exists and is public: nothing was pushed (make it private on the Hub, "
                         "or push to another repo).")  # fmt: skip
    operations = [CommitOperationAdd("README.md", readme.encode()),
                  *(CommitOperationAdd(in_repo, str(path)) for in_repo, path in files)]  # fmt: skip
    commit = api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset")
    return {"repo_url": _web_url(str(repo)), "commit_url": _web_url(commit.commit_url)}


def _web_url(url: str | None) -> str:
    """The Hub's answer becomes a link on the export page: http(s) only."""
    return url[:500] if url and url.startswith(("https://", "http://")) else ""


def hub_push_run(push_id: int) -> None:
    """Claim the push (one conditional UPDATE: a task delivered twice pushes once), push, record the outcome. Every
    failure ends the push FAILED with a message that names what to fix; none is raised to the task."""
    now = timezone.now()
    claimable = Q(state=HubPush.State.QUEUED) | Q(state=HubPush.State.RUNNING, started_at__lt=now - STALE_AFTER)
    claimed = HubPush.objects.filter(claimable, pk=push_id).update(
        state=HubPush.State.RUNNING, started_at=now, error=""
    )
    if not claimed:
        return
    push = HubPush.objects.select_related("export", "export__project", "export__recipe").get(pk=push_id)
    export = push.export
    token = os.environ.get(push.token_env, "").strip()
    try:
        if not token:
            raise HubRefused(f"The environment variable {push.token_env} is not set on the worker, or is empty: set "
                             "it to a Hugging Face token with write access, then push again.")  # fmt: skip
        readme = export_file(export, "datasheet.md")
        if readme is None:
            raise HubRefused("The export's datasheet is missing on disk: export the recipe again.")
        result = hub_upload(
            repo_id=push.repo_id, private=push.private, token=token, readme=readme.read_text(),
            files=hub_files(export), endpoint=settings.HF_ENDPOINT,
            message=f"Arbiter export {export.recipe.name} v{export.recipe.version} ({export.format}, "
                    f"{export.rows_train} train / {export.rows_test} test rows)",
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - whatever went wrong (the Hub, the network, a time limit): FAILED
        message = f"{type(exc).__name__}: {exc}"[:2000]
        if getattr(getattr(exc, "response", None), "status_code", None) in (401, 403):
            message += (f" (Check that the token in {push.token_env} is valid and may write to "
                        f"{push.repo_id.split('/')[0]}.)")  # fmt: skip
        if token:
            message = message.replace(token, "***")  # an error that quotes the request must not carry the token
        HubPush.objects.filter(pk=push.pk).update(state=HubPush.State.FAILED, error=message,
                                                  finished_at=timezone.now())  # fmt: skip
        logger.warning("hub push %s of export %s to %s failed: %s", push.public_id, export.public_id, push.repo_id,
                       message)  # fmt: skip
        return
    HubPush.objects.filter(pk=push.pk).update(state=HubPush.State.SUCCEEDED, finished_at=timezone.now(), **result)
