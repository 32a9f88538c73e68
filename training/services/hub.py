"""Pushing an export to the Hugging Face Hub: checking the request and queueing it (the push itself runs on a worker,
training.export.hub), whichever door it came in by (page, API)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from ..export.hub import repo_id_problem
from ..models import DatasetExport, HubPush
from ..tasks import hub_push_task


def _check_token_env(name: str) -> None:
    if not name or not name.replace("_", "").isalnum() or name[0].isdigit():
        raise ValidationError({"token_env": "Give the *name* of an environment variable (letters, digits, _), e.g. "
                                            "HF_TOKEN."})  # fmt: skip
    if name.startswith("hf_") and len(name) >= 30:  # a Hub token (hf_ and ~34 characters): never store one
        raise ValidationError({"token_env": "That looks like a token itself: give the name of the environment "
                                            "variable that holds it (e.g. HF_TOKEN), never the token."})  # fmt: skip


def hub_push_start(*, export: DatasetExport, user, repo_id: str, private: bool = True,
                   token_env: str = "HF_TOKEN") -> HubPush:  # fmt: skip
    """Queue a push of the finished export to the dataset repo ``repo_id``. The same push asked again while one is
    queued or running (a double click, a second tab) returns that one and queues nothing."""
    repo_id, token_env = repo_id.strip(), token_env.strip()
    if export.state != DatasetExport.State.SUCCEEDED:
        raise ValidationError("Only a finished export can be pushed.")
    problem = repo_id_problem(repo_id)
    if problem:
        raise ValidationError({"repo_id": problem})
    _check_token_env(token_env)
    for _ in range(2):  # the in-flight push may finish between our insert and our read: then insert again
        try:
            with transaction.atomic():
                push = HubPush.objects.create(export=export, repo_id=repo_id, private=private, token_env=token_env,
                                              created_by=user)  # fmt: skip
        except IntegrityError:
            push = HubPush.objects.filter(export=export, repo_id=repo_id, state__in=HubPush.IN_FLIGHT).first()
            if push is not None:
                return push
            continue
        hub_push_task.delay_on_commit(push.pk)
        return push
    raise ValidationError("Another push to this repo is starting: try again.")
