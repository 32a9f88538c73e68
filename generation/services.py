"""Generation's writes, whichever door (page, API, command) they come from: prompt sets, generators, runs (start;
pause, resume and cancel are judging's, shared by every endpoint run), building pairs from candidates, KTO rows, and
people's ratings of single candidates (opening a set for rating, calibration answers, a rating)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import orjson
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.imports.fields import content_hash
from annotation.models import Pair, Project
from judging.checkpoints import describe_base_model
from judging.models import ENDPOINT_SETTINGS, JudgeConfig
from judging.services import QueueUnavailable, run_cancel, run_pause, run_resume

from .imports import PromptsRejected, prompts_import
from .models import Candidate, GenerationRun, Generator, HumanRating, PairOrigin, Prompt, PromptSet
from .pairing import Options, Preview, kto_weights, plan_pairs
from .plan import plan_clean, slots
from .selectors import candidate_scores, flagged_q, pairing_items, thumbs_majority
from .tasks import generation_local_task, generation_run_dispatch_task

GENERATOR_SETTINGS = (*ENDPOINT_SETTINGS, "kind", "adapter")

__all__ = ["PromptsRejected", "QueueUnavailable", "run_cancel", "run_pause", "generation_run_resume"]


def prompt_set_upload(*, project: Project, upload, name: str, user, file_format: str | None = None) -> PromptSet:
    """A prompt set from an uploaded file (saved to a temporary file, imported all or nothing, removed)."""
    suffix = os.path.splitext(upload.name or "")[1][:10]
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
    try:
        return prompts_import(project=project, path=tmp.name, name=name, filename=upload.name, user=user,
                              file_format=file_format or None)  # fmt: skip
    finally:
        os.unlink(tmp.name)


def _check_generator(generator: Generator) -> None:
    if generator.api_key_env and not generator.api_key_env.replace("_", "").isalnum():
        raise ValidationError({"api_key_env": "Give the *name* of an environment variable (letters, digits, _)."})
    if generator.kind == Generator.Kind.ENDPOINT:
        if not generator.base_url:
            raise ValidationError({"base_url": "An endpoint generator needs the server's base URL."})
        if generator.adapter:
            raise ValidationError({"adapter": "Adapters are for local checkpoints; a server serves its own model."})
        return
    try:
        describe_base_model(generator.model)
    except ValueError as exc:
        raise ValidationError({"model": str(exc)}) from None
    adapter = generator.adapter.strip()
    if adapter and not os.path.isfile(os.path.join(os.path.expanduser(adapter), "adapter_config.json")):
        raise ValidationError({"adapter": f"{adapter}: no LoRA adapter there (a folder with adapter_config.json)."})


def generator_create(*, project: Project, user, **values) -> Generator:
    unknown = set(values) - set(GENERATOR_SETTINGS)
    if unknown:
        raise ValidationError(f"Unknown generator settings: {', '.join(sorted(unknown))}.")
    generator = Generator(project=project, created_by=user, **values)
    _check_generator(generator)
    generator.full_clean()
    generator.save()
    return generator


@transaction.atomic
def generator_update(*, generator: Generator, **values) -> Generator:
    locked = Generator.objects.select_for_update().get(pk=generator.pk)
    for key, value in values.items():
        if key not in GENERATOR_SETTINGS:
            raise ValidationError(f"Unknown generator setting: {key}.")
        setattr(locked, key, value)
    _check_generator(locked)
    locked.full_clean()
    locked.save()
    return locked


def generation_run_start(*, project: Project, prompt_set: PromptSet, generator: Generator, plan: dict, user,
                         rater: JudgeConfig | None = None, limit: int | None = None,
                         prompt_ids: list[int] | None = None) -> GenerationRun:  # fmt: skip
    """A run over the prompt set's prompts (fixed now: the first ``limit``, or those of ``prompt_ids``), queued.
    Raises QueueUnavailable (the run is then recorded as failed) when the broker is down."""
    if prompt_set.project_id != project.pk or generator.project_id != project.pk:
        raise ValidationError("The prompt set and the generator must belong to this project.")
    if rater is not None and rater.project_id not in (None, project.pk):
        raise ValidationError({"rater": "This judge belongs to another project."})
    if limit is not None and limit < 1:
        raise ValidationError({"limit": "The limit must be at least 1."})
    plan = plan_clean(plan)
    chosen = Prompt.objects.filter(prompt_set=prompt_set).order_by("pk")
    if prompt_ids is not None:
        chosen = chosen.filter(pk__in=prompt_ids)
    prompt_ids = list(chosen.values_list("pk", flat=True))
    prompt_ids = prompt_ids[:limit] if limit else prompt_ids
    if not prompt_ids:
        raise ValidationError("The prompt set has no prompts.")
    per_prompt = len(slots(plan))
    run = GenerationRun.objects.create(
        project=project, prompt_set=prompt_set, generator=generator, rater=rater, plan=plan, prompt_ids=prompt_ids,
        requests_planned=len(prompt_ids) * per_prompt, ratings_planned=len(prompt_ids) * per_prompt if rater else 0,
        created_by=user,
    )  # fmt: skip
    _dispatch(run)
    return run


def _dispatch(run: GenerationRun) -> None:
    # a local checkpoint samples on a gpu worker; an endpoint's requests are split into chunks on the judge queue
    local = run.generator.kind == Generator.Kind.LOCAL
    try:
        (generation_local_task if local else generation_run_dispatch_task).delay(run.pk)
    except Exception as exc:  # noqa: BLE001 - any broker failure: fail loudly, never run inline
        GenerationRun.objects.filter(pk=run.pk).update(
            state=GenerationRun.State.FAILED, error=f"The task queue is unreachable: {exc}", finished_at=timezone.now()
        )
        raise QueueUnavailable(f"The task queue is unreachable, so the run was not started: {exc}") from exc


def generation_run_resume(*, run: GenerationRun) -> GenerationRun:
    return run_resume(run=run, dispatch=_dispatch)


GENERATION_RUN_ACTIONS = {"pause": run_pause, "resume": generation_run_resume, "cancel": run_cancel}


def pairs_options(data: dict) -> Options:
    """Pair-building options from a form or a request body (already type-checked); ValidationError names the field."""
    options = Options(**{k: v for k, v in data.items() if k in Options.__dataclass_fields__ and v is not None})
    if options.per_prompt < 1:
        raise ValidationError({"per_prompt": "must be at least 1"})
    if options.min_margin < 0:
        raise ValidationError({"min_margin": "must be 0 or more"})
    return options


def pairs_preview(*, prompt_set: PromptSet, options: Options, generator_ids: list[int] | None = None) -> Preview:
    """What pairs_build would write, computed the same way, writing nothing."""
    preview = plan_pairs(pairing_items(prompt_set, generator_ids, rater_id=options.rater), options)
    hashes = _hashes(preview, *_planned_rows(preview))
    existing = _existing_hashes(prompt_set.project, hashes)
    preview.already_in_project = sum(1 for h in hashes.values() if h in existing)
    return preview


def _planned_rows(preview: Preview) -> tuple[dict[int, Candidate], dict[int, Prompt]]:
    """The candidates and prompts the planned pairs are made of, by id (one query each)."""
    ids = {i for p in preview.pairs for i in (p.a, p.b)}
    return Candidate.objects.in_bulk(ids), Prompt.objects.in_bulk({p.prompt_id for p in preview.pairs})


def _hashes(preview: Preview, candidates: dict[int, Candidate], prompts: dict[int, Prompt]) -> dict:
    """Each planned pair's content hash, as the pair import computes it (A/B order does not matter)."""
    return {p: content_hash(prompts[p.prompt_id].messages, candidates[p.a].text, candidates[p.b].text)
            for p in preview.pairs}  # fmt: skip


def _existing_hashes(project: Project, hashes: dict) -> set[str]:
    return set(
        Pair.objects.filter(project=project, content_hash__in=list(hashes.values())).values_list(
            "content_hash", flat=True
        )
    )


def pair_from_candidates(*, project: Project, prompt: Prompt, a: Candidate, b: Candidate, digest: str, strategy: str,
                         margin: float | None, user, open_slots: int, model_names: tuple[str, str] | None = None,
                         ) -> Pair:  # fmt: skip
    """One pair of the project made of two candidates (A first), with its origin kept server-side. ``open_slots``
    0 keeps it away from annotators until it is opened."""
    model_a, model_b = model_names or (a.model, b.model)
    pair = Pair.objects.create(
        project=project, external_id=prompt.external_id, prompt=prompt.messages, prompt_is_chat=prompt.is_chat,
        response_a=a.text, response_b=b.text, model_a=model_a[:200], model_b=model_b[:200], metadata=prompt.metadata,
        source_preference="A" if margin is not None else "", content_hash=digest,
        shuffle_key=int(digest[:8], 16) & 0x7FFFFFFF, open_slots=open_slots,
    )  # fmt: skip
    PairOrigin.objects.create(pair=pair, candidate_a=a, candidate_b=b, strategy=strategy, margin=margin,
                              created_by=user)  # fmt: skip
    return pair


@dataclass
class BuildResult:
    created: int
    already_in_project: int
    preview: Preview


def pairs_build(*, prompt_set: PromptSet, options: Options, user, generator_ids: list[int] | None = None,
                prompt_ids: list[int] | None = None, open_slots: int | None = None) -> BuildResult:  # fmt: skip
    """Write the previewed pairs into the project's pool (for people or judges to label; ``open_slots`` people
    each, the project's overlap by default), each with its origin (candidates, strategy, margin) kept server-side.
    Pairs the project already has are skipped, so building twice (a double click, two tabs) adds nothing the second
    time."""
    project = prompt_set.project
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).get()  # one build at a time per project
        preview = plan_pairs(pairing_items(prompt_set, generator_ids, prompt_ids, rater_id=options.rater), options)
        candidates, prompts = _planned_rows(preview)
        hashes = _hashes(preview, candidates, prompts)
        existing = _existing_hashes(project, hashes)
        created = 0
        for planned in preview.pairs:
            digest = hashes[planned]
            if digest in existing:
                continue
            existing.add(digest)
            pair_from_candidates(project=project, prompt=prompts[planned.prompt_id], a=candidates[planned.a],
                                 b=candidates[planned.b], digest=digest, strategy=options.strategy,
                                 margin=planned.margin, user=user,
                                 open_slots=project.overlap_k if open_slots is None else open_slots)  # fmt: skip
            created += 1
    return BuildResult(created=created, already_in_project=len(preview.pairs) - created, preview=preview)


@dataclass
class KtoRows:
    rows: list[dict]
    desirable: int
    undesirable: int
    desirable_weight: float
    undesirable_weight: float
    left_out_flagged: int


def kto_rows(*, prompt_set: PromptSet, good_at: float = 7, bad_at: float = 4, include_flagged: bool = False) -> KtoRows:
    """Unpaired KTO rows from rated candidates, in TRL's conversational prompt/completion/label format, with
    KTOTrainer's class weights set from the actual counts (kto_weights). People's thumbs decide where they have a
    majority; otherwise the judges' mean score: desirable at ``good_at`` or more, undesirable at ``bad_at`` or less
    (the ones between, and thumbs ties, are left out)."""
    if bad_at >= good_at:
        raise ValidationError({"bad_at": "must be below good_at"})
    candidates = Candidate.objects.filter(prompt__prompt_set=prompt_set).select_related("prompt").order_by("pk")
    flagged = set(candidates.filter(flagged_q()).values_list("pk", flat=True))
    scores = candidate_scores(candidates.values_list("pk", flat=True))
    thumbs = thumbs_majority(candidates.values_list("pk", flat=True))
    rows, left_out = [], 0
    for candidate in candidates:
        score = scores.get(candidate.pk)
        label = thumbs.get(candidate.pk)
        if label is None and score is not None and not bad_at < score < good_at:
            label = score >= good_at
        if label is None:
            continue
        if candidate.pk in flagged and not include_flagged:
            left_out += 1
            continue
        completion = [{"role": "assistant", "content": candidate.text}]
        rows.append({"prompt": candidate.prompt.messages, "completion": completion, "label": label})
    desirable = sum(1 for r in rows if r["label"])
    weights = kto_weights(desirable, len(rows) - desirable)
    return KtoRows(rows, desirable, len(rows) - desirable, *weights, left_out_flagged=left_out)


def kto_jsonl(result: KtoRows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in result.rows)


def rating_open(*, prompt_set: PromptSet, k: int, hide_identity_leaks: bool = True) -> PromptSet:
    """Open (k >= 1) or close (k = 0) the prompt set's candidates for people to rate, k people a candidate."""
    if not 0 <= k <= 20:
        raise ValidationError({"k": "must be from 0 (closed) to 20"})
    PromptSet.objects.filter(pk=prompt_set.pk).update(rating_k=k, hide_identity_leaks=hide_identity_leaks)
    prompt_set.refresh_from_db()
    return prompt_set


def candidate_gold_set(*, candidate: Candidate, gold: str) -> Candidate:
    """Make a candidate a calibration item with the expected thumbs ("up"/"down"), or a plain one again ("")."""
    if gold not in ("", "up", "down"):
        raise ValidationError({"gold": 'must be "up", "down" or empty'})
    Candidate.objects.filter(pk=candidate.pk).update(gold=gold)
    candidate.refresh_from_db()
    return candidate


def human_rating_submit(*, candidate: Candidate, user, up: bool | None, stars: int | None = None,
                        time_ms: int | None = None) -> tuple[HumanRating, bool]:  # fmt: skip
    """Record a person's rating (``up`` None: a skip). One per person and candidate: a second submit (a double
    click, another tab) returns the first and changes nothing. Returns (rating, created)."""
    if stars is not None and not 1 <= stars <= 5:
        raise ValidationError({"stars": "must be from 1 to 5"})
    if up is None and stars is not None:
        raise ValidationError({"stars": "a skip carries no stars"})
    try:
        with transaction.atomic():
            rating = HumanRating.objects.create(candidate=candidate, annotator=user, up=up, stars=stars,
                                                time_ms=time_ms)  # fmt: skip
    except IntegrityError:
        return HumanRating.objects.get(candidate=candidate, annotator=user), False
    return rating, True
