"""What the training API reads and writes: recipes, exports and training jobs."""

from __future__ import annotations

from rest_framework import serializers

from .jobs.spec import PRESETS
from .models import Campaign, CampaignRound, CurationRecipe, DatasetExport, Evaluation, HubPush, Sweep, TrainingJob
from .sweeps.compare import METRICS


class RecipeSerializer(serializers.ModelSerializer):
    class Meta:
        model = CurationRecipe
        fields = ["id", "name", "version", "config", "created_at"]
        read_only_fields = ["version", "created_at"]


class ExportRequestSerializer(serializers.Serializer):
    recipe = serializers.IntegerField(help_text="The recipe version's id.")
    format = serializers.ChoiceField(choices=DatasetExport.Format.values)
    conversational = serializers.BooleanField(default=False)
    test_fraction = serializers.FloatField(default=0.1, min_value=0.0, max_value=0.9)
    seed = serializers.IntegerField(default=0, min_value=0)


class ExportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    recipe = RecipeSerializer(read_only=True)

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "recipe",
            "format",
            "conversational",
            "test_fraction",
            "seed",
            "state",
            "content_hash",
            "rows_train",
            "rows_test",
            "funnel",
            "files",
            "datasheet",
            "error",
            "created_at",
            "finished_at",
        ]


class HubPushRequestSerializer(serializers.Serializer):
    repo_id = serializers.CharField(max_length=200, help_text="The Hub dataset repo, owner/name (created if missing).")
    private = serializers.BooleanField(default=True, help_text="Create the repo private (an existing repo keeps its "
                                       "visibility; a public one is refused when private is asked).")  # fmt: skip
    token_env = serializers.CharField(
        max_length=100, default="HF_TOKEN",
        help_text="The NAME of the environment variable that holds the token on the workers; never the token.",
    )  # fmt: skip


class HubPushSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    export = serializers.UUIDField(source="export.public_id", read_only=True)

    class Meta:
        model = HubPush
        fields = ["id", "export", "repo_id", "private", "token_env", "state", "repo_url", "commit_url", "error",
                  "created_at", "started_at", "finished_at"]  # fmt: skip


class JobRequestSerializer(serializers.Serializer):
    export = serializers.UUIDField(help_text="The export's id.")
    preset = serializers.ChoiceField(choices=list(PRESETS), default="dpo-lora")
    name = serializers.CharField(required=False, allow_blank=True, default="")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="JobSpec fields (training/jobs/spec.py) to change from the preset "
                                               "(base_model is required here or in the preset).")  # fmt: skip


class JobSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    export = serializers.UUIDField(source="export.public_id", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    sweep = serializers.UUIDField(source="sweep.public_id", read_only=True, allow_null=True)

    class Meta:
        model = TrainingJob
        fields = ["id", "name", "project", "export", "spec", "state", "stage", "step", "max_steps", "hardware",
                  "memory_plan", "summary", "evaluation", "alarms", "stop_reason", "sweep", "sweep_point", "artifacts",
                  "error", "created_at", "started_at", "finished_at"]  # fmt: skip


class EvaluationRequestSerializer(serializers.Serializer):
    judge = serializers.IntegerField(required=False, help_text="A judge's id; the project's last used by default.")
    baseline_job = serializers.UUIDField(required=False, help_text="Another finished job of the project; default: "
                                                                   "the job's base model.")  # fmt: skip
    prompt_set = serializers.IntegerField(required=False, help_text="A prompt set's id; default: the export's "
                                                                    "held-out prompts.")  # fmt: skip
    limit = serializers.IntegerField(required=False, min_value=1, max_value=10000)
    plan = serializers.DictField(required=False, help_text="Decoding for both models: one temperature, max_tokens, "
                                                           "top_p, seed, system (generation.plan).")  # fmt: skip


class EvaluationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    job = serializers.UUIDField(source="job.public_id", read_only=True)
    baseline_job = serializers.UUIDField(source="baseline_job.public_id", read_only=True, allow_null=True)
    judge = serializers.CharField(source="judge.name", read_only=True, allow_null=True)
    prompt_set = serializers.CharField(source="prompt_set.name", read_only=True)
    ab_project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Evaluation
        fields = ["id", "job", "baseline_job", "judge", "prompt_set", "plan", "limit", "automatic", "state", "stage",
                  "error", "ab_project", "report", "sent_to_people_at", "created_at", "finished_at"]  # fmt: skip


class SweepRequestSerializer(serializers.Serializer):
    export = serializers.UUIDField(help_text="The export's id.")
    axes = serializers.DictField(child=serializers.ListField(), help_text="JobSpec field -> the values to try; in "
                                 "random mode a value may be a range \"low..high\".")  # fmt: skip
    preset = serializers.ChoiceField(choices=list(PRESETS), default="dpo-lora")
    settings = serializers.DictField(required=False, default=dict, help_text="JobSpec fields every run shares.")
    mode = serializers.ChoiceField(choices=Sweep.Mode.values, default="grid")
    draws = serializers.IntegerField(required=False, default=0, min_value=0)
    seed = serializers.IntegerField(required=False, default=0, min_value=0)
    max_runs = serializers.IntegerField(required=False, default=16, min_value=1, max_value=256)
    budget_minutes = serializers.FloatField(required=False, allow_null=True, default=None)
    metric = serializers.ChoiceField(choices=["", *METRICS], required=False, default="")
    prune_at = serializers.FloatField(
        required=False, default=0.0,
        help_text="Early termination: the share of a run's steps at which one worse than the median stops (0: never).",
    )  # fmt: skip
    name = serializers.CharField(required=False, allow_blank=True, default="")


class SweepSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    export = serializers.UUIDField(source="export.public_id", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    promoted_job = serializers.UUIDField(source="promoted_job.public_id", read_only=True, allow_null=True)
    runs = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = ["id", "name", "project", "export", "preset", "settings", "axes", "mode", "draws", "seed", "max_runs",
                  "budget_minutes", "prune_at", "metric", "state", "stage", "promoted_job", "promoted_at", "runs",
                  "created_at", "finished_at"]  # fmt: skip

    def get_runs(self, sweep) -> list:
        return [str(pk) for pk in sweep.jobs.order_by("pk").values_list("public_id", flat=True)]


class CampaignRoundSerializer(serializers.ModelSerializer):
    job = serializers.UUIDField(source="job.public_id", read_only=True, allow_null=True)
    export = serializers.UUIDField(source="export.public_id", read_only=True, allow_null=True)
    eval_base = serializers.UUIDField(source="eval_base.public_id", read_only=True, allow_null=True)
    eval_previous = serializers.UUIDField(source="eval_previous.public_id", read_only=True, allow_null=True)
    pairs = serializers.SerializerMethodField()

    class Meta:
        model = CampaignRound
        fields = ["number", "stage", "state", "detail", "error", "pairs", "export", "job", "eval_base",
                  "eval_previous", "report", "started_at", "finished_at"]  # fmt: skip

    def get_pairs(self, round_) -> int:
        return len(round_.pair_ids)


class CampaignSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    prompt_set = serializers.CharField(source="prompt_set.name", read_only=True)
    eval_prompt_set = serializers.CharField(source="eval_prompt_set.name", read_only=True)
    judge = serializers.CharField(source="judge.name", read_only=True, allow_null=True)
    recipe = serializers.CharField(source="recipe.__str__", read_only=True)
    round_details = CampaignRoundSerializer(source="round_set", many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", "name", "project", "base_model", "prompt_set", "eval_prompt_set", "eval_prompts", "rounds",
                  "reuse_prompts", "plan", "judge", "people_k", "people_minutes", "pairing", "recipe", "preset",
                  "settings", "reference", "stop_win_rate", "stop_kl", "budget_usd", "state", "stage", "error",
                  "stop_reason", "round_details", "created_at", "started_at", "finished_at"]  # fmt: skip


class CampaignRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    prompt_set = serializers.CharField(help_text="The prompt pool's name in the project.")
    recipe = serializers.IntegerField(help_text="A curation recipe (version) of the project, by id.")
    judge = serializers.CharField(help_text="The judge's name (the project's, or a shared one).")
    base_model = serializers.CharField(max_length=500)
    rounds = serializers.IntegerField(default=3, min_value=1, max_value=10)
    per_round = serializers.IntegerField(default=100, min_value=1)
    eval_prompts = serializers.IntegerField(default=50, min_value=1)
    eval_prompt_set = serializers.CharField(
        required=False, allow_blank=True, help_text="Held-out prompt set's name; empty: the pool's last prompts."
    )
    reuse_prompts = serializers.BooleanField(default=False)
    plan = serializers.DictField(required=False, help_text="generation plan: temperatures, samples, max_tokens ...")
    pairing = serializers.DictField(required=False, help_text="strategy, per_prompt, min_margin ...")
    people_k = serializers.IntegerField(default=0, min_value=0, max_value=20)
    people_minutes = serializers.FloatField(required=False, allow_null=True)
    preset = serializers.ChoiceField(choices=list(PRESETS), default="dpo-lora")
    settings = serializers.DictField(required=False)
    reference = serializers.ChoiceField(choices=["initial", "previous"], default="initial")
    stop_win_rate = serializers.FloatField(required=False, allow_null=True)
    stop_kl = serializers.FloatField(required=False, allow_null=True)
    budget_usd = serializers.DecimalField(max_digits=12, decimal_places=4, required=False, allow_null=True)
