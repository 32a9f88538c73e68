from __future__ import annotations

from rest_framework import serializers

from .models import JudgeConfig, JudgeRun
from .services import JUDGE_SETTINGS


class JudgeSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    shared = serializers.SerializerMethodField()
    system = serializers.CharField(write_only=True, required=False)
    template = serializers.CharField(write_only=True, required=False)

    class Meta:
        model = JudgeConfig
        # api_key_env is the *name* of an environment variable; the key itself is never stored or returned.
        fields = ["id", "kind", *JUDGE_SETTINGS, "adapter", "trained_on", "response_mode", "logprobs_supported",
                  "shared", "system", "template"]  # fmt: skip
        read_only_fields = ["response_mode", "logprobs_supported", "trained_on"]
        # A reward model has no endpoint: base_url stays empty (the model validates what each kind needs).
        extra_kwargs = {"base_url": {"required": False}}

    def get_shared(self, obj) -> bool:
        return obj.project_id is None


class RunRequestSerializer(serializers.Serializer):
    judge = serializers.UUIDField(help_text="The judge's id.")
    only_unlabelled = serializers.BooleanField(default=False)
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class RunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    judge = serializers.CharField(source="judge.name")
    prompt_version = serializers.IntegerField(source="prompt_version.version")
    pairs = serializers.SerializerMethodField()

    class Meta:
        model = JudgeRun
        fields = ["id", "judge", "prompt_version", "state", "pairs", "requests_planned", "verdicts_done",
                  "unparseable", "api_calls", "cache_hits", "tokens_in", "tokens_out", "cost_usd", "error",
                  "created_at", "started_at", "finished_at"]  # fmt: skip

    def get_pairs(self, obj) -> int:
        return len(obj.pair_ids)
