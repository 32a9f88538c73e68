"""Judge configurations, prompt versions and runs: every write, whichever door (page, API, command) it came from."""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotation.models import Label, Pair, Project

from .checkpoints import describe_base_model
from .engine import orders_for
from .models import EndpointRun, JudgeConfig, JudgeRun, PromptVersion, Verdict
from .prompts import DEFAULT_SYSTEM, DEFAULT_TEMPLATE, template_problems
from .signals import run_ended
from .tasks import judge_run_dispatch_task, reward_run_task

JUDGE_SETTINGS = (
    "name", "base_url", "model", "api_key_env", "temperature", "max_tokens", "price_input_per_m",
    "price_output_per_m", "max_concurrency", "requests_per_minute", "budget_usd", "both_orders",
)  # fmt: skip
CONNECTION_SETTINGS = ("base_url", "model", "api_key_env")


class QueueUnavailable(Exception):
    """The task queue could not be reached: nothing was started (runs are never executed inline)."""


def _check_env_name(value: str) -> None:
    if value and not value.replace("_", "").isalnum():
        raise ValidationError({"api_key_env": "Give the *name* of an environment variable (letters, digits, _)."})


@transaction.atomic
def judge_create(*, project: Project | None, user, system: str = DEFAULT_SYSTEM, template: str = DEFAULT_TEMPLATE,
                 **values) -> JudgeConfig:  # fmt: skip
    """A judge configuration (``project=None``: shared with every project, admins only) and its prompt version 1."""
    unknown = set(values) - set(JUDGE_SETTINGS)
    if unknown:
        raise ValidationError(f"Unknown judge settings: {', '.join(sorted(unknown))}.")
    _check_env_name(values.get("api_key_env", ""))
    judge = JudgeConfig(project=project, created_by=user, **values)
    judge.full_clean()
    judge.save()
    prompt_update(judge=judge, system=system, template=template, user=user)
    return judge


def _check_reward_model(model: str, adapter: str) -> None:
    try:
        describe_base_model(model)
    except ValueError as exc:
        raise ValidationError({"model": str(exc)}) from exc
    if adapter and not os.path.isfile(os.path.join(os.path.expanduser(adapter), "adapter_config.json")):
        raise ValidationError({"adapter": f"{adapter}: no LoRA adapter there (a folder with adapter_config.json)."})


@transaction.atomic
def reward_model_create(*, project: Project | None, user, name: str, model: str, adapter: str = "",
                        trained_on: list[int] | None = None) -> JudgeConfig:  # fmt: skip
    """A reward model as a scorer (``project=None``: shared, admins only): a sequence-classification checkpoint
    (hub id, folder or GGUF base, as for training jobs) with an optional LoRA adapter. It has no endpoint and no
    prompt; its one prompt version (empty) is what its verdicts are filed under, as an LLM judge's are."""
    model, adapter = model.strip(), adapter.strip()
    _check_reward_model(model, adapter)
    judge = JudgeConfig(project=project, created_by=user, kind=JudgeConfig.Kind.REWARD_MODEL, name=name, model=model,
                        adapter=adapter, trained_on=sorted(set(trained_on or [])), both_orders=False,
                        temperature=0.0)  # fmt: skip
    judge.full_clean()
    judge.save()
    PromptVersion.objects.create(judge=judge, version=1, system="", template="", created_by=user)
    return judge


@transaction.atomic
def judge_update(*, judge: JudgeConfig, **values) -> JudgeConfig:
    """Change settings. Changing the endpoint or model forgets the detected response format."""
    locked = JudgeConfig.objects.select_for_update().get(pk=judge.pk)
    if locked.kind == JudgeConfig.Kind.REWARD_MODEL:
        # Its verdicts, ratings and cached rewards belong to its weights: another model is another reward model.
        changed = {k for k in ("model", "adapter") if k in values and values[k].strip() != getattr(locked, k)}
        if changed:
            raise ValidationError({k: "A reward model's weights cannot change (its scores belong to them): add "
                                      "another reward model." for k in changed})  # fmt: skip
        unknown = set(values) - {"name", "model", "adapter"}
        if unknown:
            raise ValidationError(f"A reward model has no setting {', '.join(sorted(unknown))}.")
        if "name" in values:
            locked.name = values["name"].strip()
        locked.full_clean()
        locked.save()
        return locked
    _check_env_name(values.get("api_key_env", ""))
    for key, value in values.items():
        if key not in JUDGE_SETTINGS:
            raise ValidationError(f"Unknown judge setting: {key}.")
        if key in CONNECTION_SETTINGS and getattr(locked, key) != value:
            locked.response_mode, locked.logprobs_supported = "", None
        setattr(locked, key, value)
    locked.full_clean()
    locked.save()
    return locked


@transaction.atomic
def prompt_update(*, judge: JudgeConfig, system: str, template: str, user) -> PromptVersion:
    """A new prompt version when the text changed (verdicts are per version, so old ones stay valid for theirs)."""
    if judge.kind == JudgeConfig.Kind.REWARD_MODEL:
        raise ValidationError({"template": "A reward model has no prompt."})
    problems = template_problems(template)
    if problems:
        raise ValidationError({"template": "; ".join(problems).capitalize() + "."})
    JudgeConfig.objects.select_for_update().filter(pk=judge.pk).get()
    current = PromptVersion.objects.filter(judge=judge).order_by("-version").first()
    if current is not None and (current.system, current.template) == (system, template):
        return current
    return PromptVersion.objects.create(
        judge=judge, version=(current.version + 1) if current else 1, system=system, template=template, created_by=user
    )


def _pairs_for_run(project: Project, *, only_unlabelled: bool, limit: int | None) -> list[int]:
    pairs = Pair.objects.filter(project=project)
    if only_unlabelled:
        pairs = pairs.filter(~Exists(Label.objects.filter(pair=OuterRef("pk"))))
    pairs = pairs.order_by("pk").values_list("pk", flat=True)
    return list(pairs[:limit] if limit else pairs)


def run_start(*, project: Project, judge: JudgeConfig, user, only_unlabelled: bool = False,
              limit: int | None = None, pair_ids: list[int] | None = None,
              judge_project: Project | None = None) -> JudgeRun:  # fmt: skip
    """Create a run over the project's pairs (fixed now; or the given ``pair_ids`` of the project) with the judge's
    current prompt and queue it on the ``judge`` queue. The judge must be shared or belong to ``judge_project``
    (the project itself unless told: an evaluation judges its project's evaluation pairs with the project's judge).
    Raises QueueUnavailable (the run is then recorded as failed) if the broker is down."""
    if judge.project_id not in (None, (judge_project or project).pk):
        raise ValidationError({"judge": "This judge belongs to another project."})
    if limit is not None and limit < 1:
        raise ValidationError({"limit": "The limit must be at least 1."})
    version = PromptVersion.objects.filter(judge=judge).order_by("-version").first()
    with transaction.atomic():
        if pair_ids is not None:
            pair_ids = sorted(Pair.objects.filter(project=project, pk__in=pair_ids).values_list("pk", flat=True))
        else:
            pair_ids = _pairs_for_run(project, only_unlabelled=only_unlabelled, limit=limit)
        if not pair_ids:
            raise ValidationError("There are no pairs to judge.")
        already = Verdict.objects.filter(judge=judge, prompt_version=version, pair_id__in=pair_ids).count()
        run = JudgeRun.objects.create(
            project=project, judge=judge, prompt_version=version, only_unlabelled=only_unlabelled, limit=limit,
            pair_ids=pair_ids, requests_planned=len(pair_ids) * len(orders_for(judge)), verdicts_done=already,
            created_by=user,
        )  # fmt: skip
    _dispatch(run)
    return run


def _dispatch(run: JudgeRun) -> None:
    task = reward_run_task if run.judge.kind == JudgeConfig.Kind.REWARD_MODEL else judge_run_dispatch_task
    try:
        task.delay(run.pk)
    except Exception as exc:  # noqa: BLE001 - any broker failure: fail loudly, never run inline
        JudgeRun.objects.filter(pk=run.pk).update(
            state=JudgeRun.State.FAILED, error=f"The task queue is unreachable: {exc}", finished_at=timezone.now()
        )
        raise QueueUnavailable(f"The task queue is unreachable, so the run was not started: {exc}") from exc


def run_pause(*, run: EndpointRun) -> EndpointRun:
    """Workers stop between requests; everything done so far is kept. Resume picks up what is missing. (Judge runs
    and generation runs alike.)"""
    type(run).objects.filter(pk=run.pk, state__in=run.LIVE).update(state=run.State.PAUSED)
    run.refresh_from_db()
    return run


def run_resume(*, run: EndpointRun, dispatch=None) -> EndpointRun:
    """A paused run (or one whose workers died) is queued again (``dispatch``: the run kind's queueing, judge runs
    by default); only what is missing is asked, and cached replies are reused."""
    states = [run.State.PAUSED, run.State.RUNNING, run.State.QUEUED]
    changed = type(run).objects.filter(pk=run.pk, state__in=states).update(state=run.State.QUEUED, error="")
    run.refresh_from_db()
    if changed:
        (dispatch or _dispatch)(run)
    return run


def run_cancel(*, run: EndpointRun) -> EndpointRun:
    if (
        type(run)
        .objects.filter(pk=run.pk, state__in=[*run.LIVE, run.State.PAUSED])
        .update(state=run.State.CANCELLED, finished_at=timezone.now())
    ):
        run_ended.send(sender=type(run), run=run)
    run.refresh_from_db()
    return run
