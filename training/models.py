"""From labelled pairs to training data: curation recipes (saved, versioned) and dataset exports (immutable
snapshots with a datasheet). Training jobs (issue 6) are launched from exports."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import BackgroundWork, Project


class CurationRecipe(models.Model):
    """One version of a named recipe. ``config`` holds training.curation.recipe.RecipeConfig as a dict; a save with a
    changed config makes the next version, so an export always points at exactly what produced it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="recipes")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    config = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name", "version"], name="recipe_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class DatasetExport(BackgroundWork):
    class Format(models.TextChoices):
        DPO = "dpo", "DPO / ORPO / SimPO: prompt, chosen, rejected"
        KTO = "kto", "KTO: prompt, completion, label"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Ready"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    recipe = models.ForeignKey(CurationRecipe, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=4, choices=Format.choices)
    conversational = models.BooleanField(default=False, help_text="Message lists instead of plain strings.")
    test_fraction = models.FloatField(default=0.1)
    seed = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    content_hash = models.CharField(max_length=64, blank=True, help_text="sha256 over the exported rows.")
    rows_train = models.PositiveIntegerField(default=0)
    rows_test = models.PositiveIntegerField(default=0)
    funnel = models.JSONField(default=list, blank=True)
    files = models.JSONField(default=dict, blank=True, help_text="name -> {path (under EXPORT_ROOT), bytes, sha256}")
    datasheet = models.JSONField(default=dict, blank=True)
    datasheet_md = models.TextField(blank=True)
    error = models.TextField(blank=True)
    stage = models.CharField(max_length=100, blank=True, help_text="What a running export is doing now.")
    pair_ids = models.JSONField(
        default=list, blank=True, help_text="Only these pairs (a campaign round's); empty: every pair of the project."
    )


class HubPush(BackgroundWork):
    """One push of a finished export to a Hugging Face Hub dataset repo, run by a worker (training.services.hub).
    The token is never stored: ``token_env`` names the environment variable the worker reads it from."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Pushing"
        SUCCEEDED = "succeeded", "Pushed"
        FAILED = "failed", "Failed"

    IN_FLIGHT = (State.QUEUED, State.RUNNING)

    export = models.ForeignKey(DatasetExport, on_delete=models.CASCADE, related_name="hub_pushes")
    repo_id = models.CharField(max_length=200, help_text="The dataset repo, owner/name.")
    private = models.BooleanField(default=True)
    token_env = models.CharField(max_length=100, help_text="The name of the environment variable holding the token.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    repo_url = models.CharField(max_length=500, blank=True)
    commit_url = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)

    class Meta(BackgroundWork.Meta):
        constraints = [
            # a double click (or a second tab) while one push of this export to this repo is under way adds nothing
            models.UniqueConstraint(
                fields=["export", "repo_id"], condition=models.Q(state__in=["queued", "running"]),
                name="hub_push_in_flight_once",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"push of {self.export_id} to {self.repo_id}"


class TrainingJob(BackgroundWork):
    """A DPO / KTO / ORPO / SimPO run on an export, executed by a GPU worker in a child process
    (training.tasks.job_run_task -> python -m training.runner). ``spec`` holds training.jobs.spec.JobSpec."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        STOPPED = "stopped", "Stopped early"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    LIVE = (State.QUEUED, State.RUNNING)
    HAS_MODEL = (State.SUCCEEDED, State.STOPPED)  # ended with weights worth using (a stop saves its step's adapter)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_jobs")
    export = models.ForeignKey(DatasetExport, on_delete=models.PROTECT, related_name="training_jobs")
    name = models.CharField(max_length=200, blank=True)
    spec = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    stage = models.CharField(max_length=200, blank=True, help_text="What a running job is doing now.")
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    hardware = models.JSONField(default=dict, blank=True, help_text="Device, precision and batch sizes chosen.")
    memory_plan = models.JSONField(
        default=dict,
        blank=True,
        help_text="How the job fits the GPU memory (training.jobs.memory): before queueing, then on the worker.",
    )
    summary = models.JSONField(default=dict, blank=True, help_text="Final training metrics.")
    evaluation = models.JSONField(default=dict, blank=True)
    model_card = models.TextField(blank=True)
    artifacts = models.JSONField(default=dict, blank=True, help_text="name -> {path (under TRAINING_ROOT), bytes}")
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    alarms = models.JSONField(default=list, blank=True, help_text="Health alarms that fired (training.jobs.health).")
    stop_reason = models.CharField(max_length=500, blank=True, help_text="The alarm that stopped the run early.")
    sweep = models.ForeignKey("Sweep", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    sweep_point = models.JSONField(default=dict, blank=True, help_text="The settings the sweep chose for this run.")

    class Meta(BackgroundWork.Meta):
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="training_job_live")]

    def __str__(self) -> str:
        return self.name or f"{self.spec.get('method', '?')} on {self.export_id}"


class Sweep(BackgroundWork):
    """Several training jobs on one export that differ in a few settings (a grid, or random draws), compared side by
    side and ranked by a metric; one of them can be promoted. ``settings`` and ``preset`` are what every run shares,
    ``axes`` the values tried (training.sweeps.points). The runs are ordinary jobs on the ``gpu`` queue."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    class Mode(models.TextChoices):
        GRID = "grid", "Grid: every combination"
        RANDOM = "random", "Random: N draws"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sweeps")
    export = models.ForeignKey(DatasetExport, on_delete=models.PROTECT, related_name="sweeps")
    name = models.CharField(max_length=200, blank=True)
    preset = models.CharField(max_length=50)
    settings = models.JSONField(default=dict, blank=True, help_text="JobSpec settings every run shares.")
    axes = models.JSONField(help_text="JobSpec field -> the values tried.")
    mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.GRID)
    draws = models.PositiveIntegerField(default=0, help_text="Random mode: how many points.")
    seed = models.PositiveIntegerField(default=0)
    max_runs = models.PositiveIntegerField(default=16)
    budget_minutes = models.FloatField(null=True, blank=True, help_text="GPU time for all runs; empty: no limit.")
    prune_at = models.FloatField(
        default=0.0, help_text="Early termination: at this share of its steps, a run whose training loss is worse than "
        "the median of the sweep's earlier runs at that step stops (0: never).",
    )  # fmt: skip
    metric = models.CharField(max_length=40, blank=True, help_text="Ranks the runs; empty: LC win rate, else "
                                                                   "held-out preference accuracy.")  # fmt: skip
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    stage = models.CharField(max_length=300, blank=True)
    promoted_job = models.ForeignKey("TrainingJob", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")  # fmt: skip
    promoted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name or f"sweep of {', '.join(self.axes)}"


class TrainingMetric(models.Model):
    """One logging step of a job: TRL's logged values (loss, rewards/*, logps/*, kl, learning_rate ...) plus
    tokens/s and device memory, as TRL names them."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    values = models.JSONField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="training_metric_step_unique")]


class Evaluation(BackgroundWork):
    """Did training help? The job's tuned model against a baseline (its base model, or another job's model) on
    held-out prompts: both answer with the same decoding plan (local generation runs on the ``gpu`` queue), the
    answers become A/B pairs of the project's evaluation project (tuned is A, never shown to people as such), a judge
    run compares them in both orders, and ``report`` holds the result (training.evaluations.report)."""

    class State(models.TextChoices):
        GENERATING = "generating", "Both models answering"
        JUDGING = "judging", "Judging"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    LIVE = (State.GENERATING, State.JUDGING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluations")
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="evaluations")
    baseline_job = models.ForeignKey(
        TrainingJob, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Compare with this job's model; empty: with the job's base model.",
    )  # fmt: skip
    prompt_set = models.ForeignKey("generation.PromptSet", on_delete=models.PROTECT, related_name="+")
    judge = models.ForeignKey("judging.JudgeConfig", null=True, on_delete=models.SET_NULL, related_name="+")
    plan = models.JSONField(help_text="The decoding plan both models answer with (generation.plan).")
    limit = models.PositiveIntegerField(help_text="How many of the prompt set's prompts.")
    automatic = models.BooleanField(default=False, help_text="Started by the job's end, not by a person.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.GENERATING)
    stage = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    tuned_generator = models.ForeignKey("generation.Generator", null=True, on_delete=models.SET_NULL, related_name="+")
    baseline_generator = models.ForeignKey(
        "generation.Generator", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    tuned_run = models.ForeignKey("generation.GenerationRun", null=True, on_delete=models.SET_NULL, related_name="+")
    baseline_run = models.ForeignKey("generation.GenerationRun", null=True, on_delete=models.SET_NULL, related_name="+")
    judge_run = models.ForeignKey("judging.JudgeRun", null=True, on_delete=models.SET_NULL, related_name="+")
    ab_project = models.ForeignKey(
        Project, null=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Where the A/B pairs live: the project's evaluation project, apart from its training pool.",
    )  # fmt: skip
    pair_ids = models.JSONField(default=list, blank=True, help_text="prompt id -> pair id, as [[prompt, pair], ...]")
    identical = models.JSONField(default=list, blank=True, help_text="Prompts both models answered word for word.")
    report = models.JSONField(default=dict, blank=True)
    sent_to_people_at = models.DateTimeField(null=True, blank=True)

    class Meta(BackgroundWork.Meta):
        indexes = [models.Index(fields=["state"], name="evaluation_state")]

    def __str__(self) -> str:
        return f"evaluation of {self.job}"


class Campaign(BackgroundWork):
    """Iterative DPO: rounds of generate -> rate -> pair -> curate -> train -> evaluate, each round's model writing
    the next round's candidates (training.campaigns). The prompt pool is split into one batch per round (no prompt
    reused unless ``reuse_prompts``); ``eval_prompt_set`` is the same held-out set every round is judged on."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        STOPPED = "stopped", "Stopped by a rule"
        FAILED = "failed", "Failed (resumable)"
        CANCELLED = "cancelled", "Cancelled"

    class Reference(models.TextChoices):
        INITIAL = "initial", "The initial model (the reference stays put)"
        PREVIOUS = "previous", "The previous round's model (the reference moves with each round)"

    LIVE = (State.RUNNING,)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    base_model = models.CharField(max_length=500)
    prompt_set = models.ForeignKey("generation.PromptSet", on_delete=models.PROTECT, related_name="+")
    eval_prompt_set = models.ForeignKey("generation.PromptSet", on_delete=models.PROTECT, related_name="+")
    eval_prompts = models.PositiveIntegerField(default=50, help_text="Held-out prompts each round is judged on.")
    batches = models.JSONField(help_text="Prompt ids of each round, fixed when the campaign is created.")
    reuse_prompts = models.BooleanField(default=False)
    plan = models.JSONField(help_text="How each round's model samples its candidates (generation.plan).")
    judge = models.ForeignKey("judging.JudgeConfig", null=True, on_delete=models.SET_NULL, related_name="+")
    people_k = models.PositiveSmallIntegerField(default=0, help_text="People labelling each pair (0: judges only).")
    people_minutes = models.FloatField(null=True, blank=True, help_text="How long the people have before the "
                                       "judge labels what they left (empty: wait for them).")  # fmt: skip
    pairing = models.JSONField(help_text="Pair building options (generation.pairing.Options).")
    recipe = models.ForeignKey(CurationRecipe, on_delete=models.PROTECT, related_name="+")
    preset = models.CharField(max_length=50)
    settings = models.JSONField(default=dict, blank=True, help_text="JobSpec settings every round's job shares.")
    reference = models.CharField(max_length=10, choices=Reference.choices, default=Reference.INITIAL)
    rounds = models.PositiveSmallIntegerField()
    stop_win_rate = models.FloatField(null=True, blank=True, help_text="Stop when a round wins less than this "
                                      "against the previous round (judged).")  # fmt: skip
    stop_kl = models.FloatField(null=True, blank=True, help_text="Stop when a round's KL from the base exceeds this.")
    budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    stage = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    stop_reason = models.CharField(max_length=500, blank=True)
    # one process moves a campaign on at a time (training.campaigns.flow): a lease, and a poke for what came meanwhile
    lease_until = models.DateTimeField(null=True, blank=True)
    poked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class CampaignRound(models.Model):
    """One round of a campaign; ``stage`` is where it is (or where it failed, to resume from)."""

    class Stage(models.TextChoices):
        GENERATE = "generate", "Generate"
        PAIR = "pair", "Pair"
        RATE = "rate", "Rate"
        CURATE = "curate", "Curate and export"
        TRAIN = "train", "Train"
        EVALUATE = "evaluate", "Evaluate"
        DONE = "done", "Done"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for people"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="round_set")
    number = models.PositiveSmallIntegerField()
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.GENERATE)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    detail = models.CharField(max_length=300, blank=True, help_text="What the stage is doing now.")
    error = models.TextField(blank=True)
    generator = models.ForeignKey("generation.Generator", null=True, on_delete=models.SET_NULL, related_name="+")
    generation_run = models.ForeignKey("generation.GenerationRun", null=True, on_delete=models.SET_NULL,
                                       related_name="+")  # fmt: skip
    pair_ids = models.JSONField(default=list, blank=True)
    rate_started_at = models.DateTimeField(null=True, blank=True)
    judge_run = models.ForeignKey("judging.JudgeRun", null=True, on_delete=models.SET_NULL, related_name="+")
    export = models.ForeignKey(DatasetExport, null=True, on_delete=models.SET_NULL, related_name="+")
    job = models.ForeignKey(TrainingJob, null=True, on_delete=models.SET_NULL, related_name="+")
    eval_base = models.ForeignKey(Evaluation, null=True, on_delete=models.SET_NULL, related_name="+")
    eval_previous = models.ForeignKey(Evaluation, null=True, on_delete=models.SET_NULL, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "number"]
        constraints = [models.UniqueConstraint(fields=["campaign", "number"], name="campaign_round_once")]
