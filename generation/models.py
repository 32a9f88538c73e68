"""Candidate generation: prompt sets, generators, generation runs, the candidates they sample and the ratings of
single candidates, and where a pair built from candidates came from.

A candidate is identified by its *sampling slot*: (prompt, generator, slot key), where the slot key is a hash of
everything that determines the sample (temperature, sample number, top_p, max_tokens, seed, system prompt). The
database holds at most one candidate per slot, so a chunk delivered twice (a killed worker) or a re-run writes
nothing twice; a re-run of the same plan finds every slot filled and sends no request.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from annotation.models import BackgroundWork, Pair, Project
from judging.models import Endpoint, EndpointRun, JudgeConfig


class PromptSet(BackgroundWork):
    """Prompts without responses, imported from one file (all or nothing: a file with errors leaves no set),
    de-duplicated by content."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompt_sets")
    name = models.CharField(max_length=100)
    filename = models.CharField(max_length=255, blank=True)
    rows_read = models.PositiveIntegerField(default=0)
    prompts_created = models.PositiveIntegerField(default=0)
    duplicates_skipped = models.PositiveIntegerField(default=0)
    # People rating the candidates one at a time (thumbs, optional stars): how many per candidate; 0 = not open.
    rating_k = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(20)])
    hide_identity_leaks = models.BooleanField(
        default=True, help_text="Keep candidates that name a model or vendor away from people (they break blinding)."
    )

    class Meta(BackgroundWork.Meta):
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="prompt_set_name_unique")]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField(help_text="Chat messages [{role, content}]; a plain string is one user turn.")
    is_chat = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True, help_text="Task type, difficulty, ...: for slicing.")
    content_hash = models.CharField(max_length=64)
    line = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["prompt_set", "content_hash"], name="prompt_content_unique")]

    @property
    def text(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages)


class Generator(Endpoint):
    """A model that writes candidates: an OpenAI-compatible endpoint (the same settings as a judge, sent through
    the same client, rate limit, cache and ledger), or a local checkpoint run with transformers on the ``gpu``
    queue (a base model, optionally with a training job's LoRA adapter)."""

    class Kind(models.TextChoices):
        ENDPOINT = "endpoint", "OpenAI-compatible endpoint"
        LOCAL = "local", "Local checkpoint (transformers, gpu queue)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generators")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ENDPOINT)
    base_url = models.URLField(
        max_length=500, blank=True, help_text="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1"
    )
    adapter = models.CharField(
        max_length=500, blank=True, help_text="Local checkpoints: a LoRA adapter folder on top of the model."
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="generator_name_unique")]


class GenerationRun(EndpointRun):
    """Prompts x a generator x a sampling plan, optionally rated by a judge as the candidates come in."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_runs")
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="runs")
    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="runs")
    rater = models.ForeignKey(JudgeConfig, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    plan = models.JSONField(help_text="temperatures, samples, top_p, max_tokens, seed, system (generation.plan).")
    prompt_ids = models.JSONField(default=list, help_text="The prompts this run samples, fixed when it starts.")
    candidates_done = models.PositiveIntegerField(default=0)
    ratings_planned = models.PositiveIntegerField(default=0)
    ratings_done = models.PositiveIntegerField(default=0)
    unparseable = models.PositiveIntegerField(default=0)


class Candidate(models.Model):
    """One sampled response with its provenance. Flags mark what a lead should know; nothing is dropped."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="candidates")
    run = models.ForeignKey(GenerationRun, null=True, on_delete=models.SET_NULL, related_name="candidates")
    slot_key = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    temperature = models.FloatField()
    sample = models.PositiveSmallIntegerField(help_text="Which sample at this temperature (0, 1, ...).")
    seed = models.BigIntegerField(null=True)
    top_p = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField()
    text = models.TextField()
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    finish_reason = models.CharField(max_length=20, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    from_cache = models.BooleanField(default=False)
    # Marks (generation.flags): shown to leads, used by pair building; never a reason to delete.
    empty = models.BooleanField(default=False)
    truncated = models.BooleanField(default=False, help_text="The server stopped at max_tokens (finish_reason=length).")
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="An earlier candidate of the same prompt with the same or nearly the same text.",
    )  # fmt: skip
    identity_leak = models.CharField(max_length=100, blank=True, help_text="The model or vendor name it gave away.")
    # Calibration: the expected thumbs, set by a lead; such candidates go to every rater and score them.
    gold = models.CharField(max_length=4, blank=True, choices=[("up", "Thumbs up"), ("down", "Thumbs down")])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt_id", "temperature", "sample"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "generator", "slot_key"], name="candidate_once_per_slot")
        ]


class Rating(models.Model):
    """A scorer's score of one candidate on its own: an LLM judge's 1-10 with a rationale, or a reward model's raw
    reward (unbounded; higher is better)."""

    class Status(models.TextChoices):
        OK = "ok", "Parsed"
        UNPARSEABLE = "unparseable", "Unparseable"

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="ratings")
    judge = models.ForeignKey(JudgeConfig, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(GenerationRun, null=True, on_delete=models.SET_NULL, related_name="ratings")
    status = models.CharField(max_length=12, choices=Status.choices)
    score = models.FloatField(null=True)
    rationale = models.TextField(blank=True)
    raw = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    from_cache = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["candidate", "judge"], name="rating_once_per_judge")]


class HumanRating(models.Model):
    """A person's thumbs up or down (and optional 1-5 stars) on one candidate, shown blinded: no model, no
    provenance, no other rating. ``up`` is null for a skip (so it is not served again)."""

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="human_ratings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    up = models.BooleanField(null=True)
    stars = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MinValueValidator(1),
                                                                               MaxValueValidator(5)])  # fmt: skip
    time_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time on the item, from the page.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["candidate", "annotator"], name="human_rating_once_per_person"),
            models.CheckConstraint(condition=models.Q(stars__isnull=True) | models.Q(stars__gte=1, stars__lte=5),
                                   name="human_rating_stars_1_to_5"),
        ]  # fmt: skip


class PairOrigin(models.Model):
    """Where a pair built from candidates came from: kept server-side, never shown to annotators."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    pair = models.OneToOneField(Pair, on_delete=models.CASCADE, related_name="origin")
    candidate_a = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    candidate_b = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    strategy = models.CharField(max_length=20)
    margin = models.FloatField(null=True, help_text="Score of A minus score of B, where both were rated.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
