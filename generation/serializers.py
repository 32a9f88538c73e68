from __future__ import annotations

from rest_framework import serializers

from annotation.imports.readers import FILE_FORMATS

from .models import Candidate, GenerationRun, Generator, PromptSet
from .pairing import STRATEGIES
from .services import GENERATOR_SETTINGS


class PromptSetSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = PromptSet
        fields = ["id", "name", "filename", "rows_read", "prompts_created", "duplicates_skipped", "created_at"]


class PromptSetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    file = serializers.FileField()
    file_format = serializers.ChoiceField(choices=FILE_FORMATS, required=False)


class GeneratorSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Generator
        # api_key_env is the *name* of an environment variable; the key itself is never stored or returned.
        fields = ["id", *GENERATOR_SETTINGS]


class PlanSerializer(serializers.Serializer):
    temperatures = serializers.ListField(child=serializers.FloatField(min_value=0, max_value=2), min_length=1,
                                         required=False)  # fmt: skip
    samples = serializers.IntegerField(min_value=1, max_value=16, required=False)
    top_p = serializers.FloatField(min_value=0.01, max_value=1, required=False)
    max_tokens = serializers.IntegerField(min_value=1, max_value=32768, required=False)
    seed = serializers.IntegerField(min_value=0, required=False)
    system = serializers.CharField(allow_blank=True, required=False)


class GenerationRunRequestSerializer(serializers.Serializer):
    prompt_set = serializers.UUIDField(help_text="The prompt set's id.")
    generator = serializers.UUIDField(help_text="The generator's id.")
    plan = PlanSerializer(required=False, help_text="The sampling plan (defaults: temperatures 0.3/0.5/0.7/1.0).")
    rater = serializers.UUIDField(required=False, allow_null=True, help_text="A judge's id: scores each candidate.")
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class GenerationRunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    prompt_set = serializers.UUIDField(source="prompt_set.public_id")
    generator = serializers.CharField(source="generator.name")
    rater = serializers.CharField(source="rater.name", default=None)
    prompts = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRun
        fields = [
            "id", "prompt_set", "generator", "rater", "plan", "state", "prompts", "requests_planned",
            "candidates_done", "ratings_planned", "ratings_done", "unparseable", "api_calls", "cache_hits",
            "tokens_in", "tokens_out", "cost_usd", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_prompts(self, obj) -> int:
        return len(obj.prompt_ids)


class CandidateSerializer(serializers.ModelSerializer):
    """A candidate with its provenance (for leads)."""

    prompt = serializers.JSONField(source="prompt.messages")
    prompt_id = serializers.CharField(source="prompt.external_id")
    generator = serializers.CharField(source="generator.name")
    duplicate_of = serializers.IntegerField(source="duplicate_of_id", allow_null=True)
    ratings = serializers.SerializerMethodField()

    class Meta:
        model = Candidate
        fields = ["id", "prompt_id", "prompt", "generator", "model", "temperature", "sample", "seed", "top_p",
                  "max_tokens", "text", "tokens_in", "tokens_out", "finish_reason", "cost_usd", "from_cache", "empty",
                  "truncated", "duplicate_of", "identity_leak", "ratings", "created_at"]  # fmt: skip

    def get_ratings(self, obj) -> list[dict]:
        return [{"judge": r.judge.name, "score": r.score, "rationale": r.rationale} for r in obj.ratings.all()]


class PairsRequestSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=STRATEGIES, default="best_worst")
    per_prompt = serializers.IntegerField(min_value=1, max_value=100, default=1)
    min_margin = serializers.FloatField(min_value=0, default=1.0)
    different_generators = serializers.BooleanField(default=False)
    include_flagged = serializers.BooleanField(default=False)
    seed = serializers.IntegerField(min_value=0, default=0)
    dry_run = serializers.BooleanField(default=True, help_text="true: only count (the preview); false: build.")


class KtoRequestSerializer(serializers.Serializer):
    good_at = serializers.FloatField(min_value=1, max_value=10, default=7)
    bad_at = serializers.FloatField(min_value=1, max_value=10, default=4)
    include_flagged = serializers.BooleanField(default=False)


class RatingOpenSerializer(serializers.Serializer):
    k = serializers.IntegerField(min_value=0, max_value=20, help_text="People per candidate (0 closes the set).")
    hide_identity_leaks = serializers.BooleanField(default=True, help_text="Keep candidates that name a model away "
                                                   "from people.")  # fmt: skip


class CandidateGoldSerializer(serializers.Serializer):
    gold = serializers.ChoiceField(choices=["", "up", "down"], allow_blank=True,
                                   help_text='The expected thumbs of a calibration candidate; "" makes it a plain '
                                             "one again.")  # fmt: skip
