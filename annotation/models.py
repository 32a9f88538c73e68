"""Annotation domain: projects, guidelines, membership, pairs, assignments and labels.

Counters on Pair (``open_slots``, ``label_count``) are written only by the assignment and label services, inside
the same transaction as the rows they count; nothing here has behaviour in save() or signals.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length


class Choice(models.TextChoices):
    """A preference in A/B terms (never left/right: the side A was shown on is stored separately)."""

    A = "A", "A is better"
    B = "B", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


# Calibration: an annotator's accuracy is taken over their last ROLLING_GOLD_WINDOW calibration answers (the quality
# report's rolling figure and the automatic pause), and nobody is paused before PAUSE_AFTER answers.
ROLLING_GOLD_WINDOW = 20
PAUSE_AFTER = 5


class Project(models.Model):
    class Rationale(models.TextChoices):
        OFF = "off", "Off"
        OPTIONAL = "optional", "Optional"
        REQUIRED = "required", "Required"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    overlap_k = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="How many distinct annotators label each pair.",
    )
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    strength_scale = models.JSONField(
        default=list,
        blank=True,
        help_text='Optional strength labels, weakest first, e.g. ["slightly", "clearly", "much"].',
    )
    rationale_mode = models.CharField(max_length=10, choices=Rationale.choices, default=Rationale.OPTIONAL)
    calibration_rate = models.FloatField(
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of assignments that are calibration (gold) pairs, served unannounced.",
    )
    practice_items = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Practice: each annotator's first N pairs are calibration pairs, announced as practice and "
        "answered with feedback (0 turns it off).",
    )
    repeat_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of assignments that re-serve a pair the annotator already labelled, sides swapped, "
        "to measure self-consistency. Repeats never count toward K.",
    )
    gold_threshold = models.FloatField(
        default=0.6,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="An annotator whose accuracy on their last calibration pairs falls below this is paused.",
    )
    lease_seconds = models.PositiveIntegerField(
        default=900,
        validators=[MinValueValidator(30), MaxValueValidator(7 * 24 * 3600)],
        help_text="An unfinished assignment returns to the pool after this many seconds.",
    )
    criteria = models.JSONField(
        default=list, blank=True, help_text='Optional per-criterion preferences, e.g. ["helpfulness", "harmlessness"].'
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def choices(self) -> list[str]:
        """The choices an annotator may give in this project, in display order."""
        allowed = [Choice.A, Choice.B]
        if self.allow_tie:
            allowed.append(Choice.TIE)
        if self.allow_both_bad:
            allowed.append(Choice.BOTH_BAD)
        return [str(c) for c in allowed]


class GuidelineVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guideline_versions")
    version = models.PositiveIntegerField()
    body = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="guideline_version_unique")]

    def __str__(self) -> str:
        return f"{self.project.slug} guidelines v{self.version}"


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        LEAD = "lead", "Lead"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ANNOTATOR)
    # Paused annotators get no assignments and their labels are left out of consensus until a lead reinstates them.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.project.slug}"


class BackgroundWork(models.Model):
    """What the four kinds of background work share (ImportBatch, JudgeRun, DatasetExport, TrainingJob): the id
    in their URLs, who asked for it, and when it was asked for, started and finished. Each kind has its own states
    (``state``, ``State``) and its own way of reporting what went wrong."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class ImportBatch(BackgroundWork):
    """One import of one file, whichever door it came in by (upload, command, API)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=255)
    upload = models.FileField(upload_to="imports/", blank=True)
    requested_format = models.CharField(max_length=20, blank=True)
    detected_format = models.CharField(max_length=20, blank=True)
    options = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    rows_read = models.PositiveIntegerField(default=0)
    pairs_created = models.PositiveIntegerField(default=0)
    duplicates_skipped = models.PositiveIntegerField(default=0)
    labels_created = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first errors, each with line/row and field.")
    warnings = models.JSONField(default=list, blank=True)


class Pair(models.Model):
    # FK indexes that a composite index already covers are left out: each index costs a write on every label.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairs", db_index=False)
    external_id = models.CharField(max_length=200, blank=True)
    # The prompt is always stored as chat messages [{"role", "content"}]; a plain-string prompt becomes one user turn.
    prompt = models.JSONField()
    prompt_is_chat = models.BooleanField(default=False)
    response_a = models.TextField()
    response_b = models.TextField()
    model_a = models.CharField(max_length=200, blank=True)
    model_b = models.CharField(max_length=200, blank=True)
    # Lengths in characters, computed by the database (every way a pair is written gets them): the length-bias
    # audits and curation read these instead of measuring 2 × 1M texts per report.
    response_a_chars = models.GeneratedField(
        expression=Length("response_a"), output_field=models.IntegerField(), db_persist=True
    )
    response_b_chars = models.GeneratedField(
        expression=Length("response_b"), output_field=models.IntegerField(), db_persist=True
    )
    metadata = models.JSONField(default=dict, blank=True)
    # Preference carried by the source file (DPO chosen/rejected order): information, never a human label.
    source_preference = models.CharField(max_length=8, choices=Choice.choices, blank=True)
    # Calibration (gold) pairs carry the expected answer; they are served to every annotator at the project's
    # calibration rate and never through the K-overlap pool (their open_slots is 0).
    gold = models.CharField(max_length=8, choices=Choice.choices, blank=True)
    # Shown to annotators after they answer a practice item, with the expected answer.
    gold_explanation = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    # Random order key; annotators walk pairs in this order from a per-annotator offset.
    shuffle_key = models.IntegerField()
    # K minus completed labels minus live leases: how many more annotators may be given this pair.
    open_slots = models.SmallIntegerField()
    label_count = models.SmallIntegerField(default=0)
    import_batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="pair_content_unique"),
            models.CheckConstraint(condition=Q(open_slots__gte=0), name="pair_open_slots_nonnegative"),
        ]
        indexes = [
            # The claim query: closest to completion first (fewest open slots), then the shuffled order.
            models.Index(
                fields=["project", "open_slots", "shuffle_key"], condition=Q(open_slots__gt=0), name="pair_claim_idx"
            ),
            models.Index(fields=["project", "shuffle_key"], condition=~Q(gold=""), name="pair_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.project_id})"

    @property
    def prompt_text(self) -> str:
        return "\n\n".join(m["content"] for m in self.prompt)


class Assignment(models.Model):
    """A pair served to one annotator, with the side response A is shown on."""

    class Kind(models.TextChoices):
        REGULAR = "regular", "Regular"
        GOLD = "gold", "Calibration (gold)"
        # Practice: a calibration pair answered with immediate feedback (announced, unlike GOLD).
        PRACTICE = "practice", "Practice (with feedback)"
        # A pair the annotator already labelled, served again later with sides swapped (self-consistency).
        REPEAT = "repeat", "Mirrored repeat"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REGULAR)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    left_is_a = models.BooleanField(help_text="True when response A is shown on the left.")
    guideline_version = models.ForeignKey(
        GuidelineVersion, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    served_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pair", "annotator"],
                condition=Q(kind__in=["regular", "gold", "practice"]),
                name="assignment_once_per_annotator",
            ),
            models.UniqueConstraint(
                fields=["pair", "annotator"], condition=Q(kind="repeat"), name="assignment_one_repeat_per_pair"
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "project", "state"], name="assignment_annotator_idx"),
            models.Index(fields=["project", "expires_at"], condition=Q(state="active"), name="assignment_lease_idx"),
        ]


class Label(models.Model):
    class Source(models.TextChoices):
        HUMAN = "human", "Annotator in Arbiter"
        EXTERNAL = "external", "Imported with the pair"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="labels")
    # One label per assignment: a double click, a retry or a second tab cannot create a second one.
    assignment = models.OneToOneField(Assignment, null=True, blank=True, on_delete=models.CASCADE, related_name="label")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="labels", db_index=False
    )
    external_annotator = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.HUMAN)
    choice = models.CharField(max_length=8, choices=Choice.choices)
    left_is_a = models.BooleanField(null=True, help_text="Side A was shown on; null for imported labels.")
    strength = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1-based index into the strength scale."
    )
    rationale = models.TextField(blank=True)
    criteria = models.JSONField(default=dict, blank=True, help_text="Per-criterion choice in A/B terms.")
    time_on_item_ms = models.PositiveIntegerField(null=True, blank=True)
    guideline_version = models.ForeignKey(
        GuidelineVersion, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(source="human", assignment__isnull=False, annotator__isnull=False))
                | (Q(source="external") & ~Q(external_annotator="")),
                name="label_has_author",
            ),
            models.UniqueConstraint(
                fields=["pair", "external_annotator"], condition=Q(source="external"), name="external_label_unique"
            ),
        ]
        indexes = [models.Index(fields=["annotator", "project"], name="label_annotator_idx")]
