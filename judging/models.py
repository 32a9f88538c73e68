"""LLM judges: configurations, versioned prompt templates, runs, verdicts, the request cache and per-pair results.

A verdict is stored in *pair* terms (A/B of the pair) and in *slot* terms (which response the judge saw first):
the judge sees the pair in one order ("ab": A first) or the other ("ba": B first). Counters on JudgeRun are written
only by the run services, with F() updates in the same transaction as the verdict they count.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from annotation.models import BackgroundWork, Pair, Project


class Endpoint(models.Model):
    """How to reach an OpenAI-compatible model and what it may cost: one definition for judges and generators
    (generation.models.Generator), which are sent through the same client, rate limiter, cache and ledger."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    base_url = models.URLField(
        max_length=500, blank=True, help_text="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1"
    )
    model = models.CharField(max_length=200)
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable that holds the API key on the workers (never the key itself).",
    )
    price_input_per_m = models.DecimalField(max_digits=10, decimal_places=4, default=0, help_text="USD per 1M input")
    price_output_per_m = models.DecimalField(max_digits=10, decimal_places=4, default=0, help_text="USD per 1M output")
    max_concurrency = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    requests_per_minute = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="For all workers together."
    )
    budget_usd = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, help_text="A run stops when its cost reaches this."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


ENDPOINT_SETTINGS = (
    "name", "base_url", "model", "api_key_env", "price_input_per_m", "price_output_per_m", "max_concurrency",
    "requests_per_minute", "budget_usd",
)  # fmt: skip


class JudgeConfig(Endpoint):
    """A scorer of responses: an LLM judge (an OpenAI-compatible endpoint asked with a prompt) or a reward model (a
    sequence-classification checkpoint that scores each response on a ``gpu`` queue worker; no endpoint, no prompt,
    order-free: a pair's margin is the difference of its two scores)."""

    class Kind(models.TextChoices):
        LLM = "llm", "LLM judge"
        REWARD_MODEL = "reward_model", "Reward model"

    class ResponseMode(models.TextChoices):
        UNKNOWN = "", "Not detected yet"
        JSON_SCHEMA = "json_schema", "response_format json_schema (OpenAI, vLLM)"
        JSON_OBJECT_SCHEMA = "json_object_schema", "response_format json_object with a schema (llama.cpp)"
        JSON_OBJECT = "json_object", "response_format json_object (validated afterwards)"

    # Null project: shared by an admin with every project.
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="judges")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.LLM)
    adapter = models.CharField(
        max_length=500, blank=True, help_text="Reward models: a LoRA adapter folder (a reward-model job's)."
    )
    trained_on = models.JSONField(
        default=list, blank=True, help_text="Pairs a reward model was trained on: left out of its audit (held out)."
    )
    temperature = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    max_tokens = models.PositiveIntegerField(default=512, validators=[MinValueValidator(16), MaxValueValidator(32768)])
    both_orders = models.BooleanField(default=True, help_text="Judge each pair with A first and with B first.")
    response_mode = models.CharField(max_length=20, choices=ResponseMode.choices, blank=True, default="")
    logprobs_supported = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="judge_name_unique_per_project"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(project__isnull=True), name="shared_judge_name_unique"
            ),
        ]


class PromptVersion(models.Model):
    """One version of a judge's prompt. Placeholders: {guidelines} {criteria} {prompt} {response_a} {response_b}
    (response_a is whatever the judge sees first)."""

    judge = models.ForeignKey(JudgeConfig, on_delete=models.CASCADE, related_name="prompt_versions")
    version = models.PositiveIntegerField()
    system = models.TextField()
    template = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["judge", "version"], name="prompt_version_unique")]


class EndpointRun(BackgroundWork):
    """A run of requests to one endpoint, with its ledger. The counters are written only with F() updates in the
    same transaction as the result they count (judging.endpoint.ledger_add)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        SUCCEEDED = "succeeded", "Finished"
        CANCELLED = "cancelled", "Cancelled"
        BUDGET = "budget", "Stopped: budget reached"
        FAILED = "failed", "Failed"

    LIVE = (State.QUEUED, State.RUNNING)

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    requests_planned = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField(default=0)
    cache_hits = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta(BackgroundWork.Meta):
        abstract = True


class JudgeRun(EndpointRun):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_runs")
    judge = models.ForeignKey(JudgeConfig, on_delete=models.CASCADE, related_name="runs")
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="runs")
    only_unlabelled = models.BooleanField(default=False)
    limit = models.PositiveIntegerField(null=True, blank=True)
    pair_ids = models.JSONField(default=list, help_text="The pairs this run judges, fixed when it starts.")
    verdicts_done = models.PositiveIntegerField(default=0)
    unparseable = models.PositiveIntegerField(default=0)


class Verdict(models.Model):
    class Order(models.TextChoices):
        AB = "ab", "A shown first"
        BA = "ba", "B shown first"

    class Status(models.TextChoices):
        OK = "ok", "Parsed"
        UNPARSEABLE = "unparseable", "Unparseable"

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="verdicts")
    judge = models.ForeignKey(JudgeConfig, on_delete=models.CASCADE, related_name="verdicts")
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="verdicts")
    run = models.ForeignKey(JudgeRun, null=True, on_delete=models.SET_NULL, related_name="verdicts")
    order = models.CharField(max_length=2, choices=Order.choices)
    status = models.CharField(max_length=12, choices=Status.choices)
    # pair terms: A, B or tie; slot terms: "first", "second" or "tie"
    winner = models.CharField(max_length=4, blank=True)
    winner_slot = models.CharField(max_length=6, blank=True)
    # An LLM judge's 1-10 scores, or a reward model's raw rewards (unbounded).
    score_a = models.FloatField(null=True)
    score_b = models.FloatField(null=True)
    rationale = models.TextField(blank=True)
    confidence = models.FloatField(null=True, help_text="Probability of the winner token, where logprobs came back.")
    raw = models.TextField(blank=True, help_text="The model's reply as received.")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    from_cache = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pair", "judge", "prompt_version", "order"], name="verdict_once_per_pair_order"
            )
        ]
        indexes = [models.Index(fields=["run", "pair"], name="verdict_run_idx")]


class CachedReply(models.Model):
    """A server reply keyed by everything that determines it, so a re-run or a resumed run never pays twice."""

    key = models.CharField(max_length=64, unique=True)
    content = models.TextField()
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    confidence = models.FloatField(null=True)
    finish_reason = models.CharField(max_length=20, blank=True, help_text="Of a generated reply: stop, length, ...")
    created_at = models.DateTimeField(auto_now_add=True)


class PairJudgement(models.Model):
    """Both orders of one pair by one judge and prompt version, combined: what curation reads."""

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="judgements")
    judge = models.ForeignKey(JudgeConfig, on_delete=models.CASCADE, related_name="judgements")
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="judgements")
    winner = models.CharField(max_length=4, help_text="A, B or tie; tie when the orders disagree.")
    consistent = models.BooleanField(help_text="Both orders named the same winner.")
    margin = models.FloatField(help_text="Mean of score_a - score_b over the orders judged (swap-consistent).")
    orders = models.PositiveSmallIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pair", "judge", "prompt_version"], name="judgement_once_per_pair")
        ]


class Composite(models.Model):
    """Several scorers stacked per axis (issue 19): each scorer's margins normalised on the project, axes as weighted
    means of their scorers, the composite as the weighted mean of the axes (judging.stacking). ``axes`` is
    [{"name", "weight", "scorers": [{"judge": JudgeConfig pk, "weight"}]}], validated by judging.stacking.services;
    ``stats`` is what the last compute used and found (per scorer, per axis, between axes)."""

    class Normalisation(models.TextChoices):
        Z = "z", "z-score"
        RANK = "rank", "rank"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="composites")
    name = models.CharField(max_length=100)
    normalisation = models.CharField(max_length=4, choices=Normalisation.choices, default=Normalisation.Z)
    axes = models.JSONField(default=list)
    stats = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="composite_name_unique_per_project")]

    def __str__(self) -> str:
        return self.name


class CompositeScore(models.Model):
    """One pair's composite value (> 0: A preferred) and its axes' values ({axis name: value}; an axis none of whose
    scorers judged the pair is absent)."""

    composite = models.ForeignKey(Composite, on_delete=models.CASCADE, related_name="scores")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="composite_scores")
    value = models.FloatField()
    axes = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["composite", "pair"], name="composite_score_once_per_pair")]
        indexes = [models.Index(fields=["composite", "value"], name="composite_score_value_idx")]
