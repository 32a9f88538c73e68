from __future__ import annotations

from rest_framework import serializers

from .models import JudgeConfig, JudgeRun
from .selectors import prompt_current
from .services import JUDGE_SETTINGS


class SharedField(serializers.BooleanField):
    """Read: whether the judge is shared with every project (it has no project). Written when a judge is created:
    admins only."""

    def get_attribute(self, instance):
        return instance.project_id is None


class JudgeSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    shared = SharedField(required=False, help_text="Shared with every project (set on creation, by admins).")
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


class JudgeDetailSerializer(JudgeSerializer):
    prompt = serializers.SerializerMethodField()

    class Meta(JudgeSerializer.Meta):
        fields = [*JudgeSerializer.Meta.fields, "prompt"]

    def get_prompt(self, obj) -> dict | None:
        """The current prompt version (None for a reward model's empty one)."""
        current = prompt_current(obj)
        if current is None or obj.kind == JudgeConfig.Kind.REWARD_MODEL:
            return None
        return {"version": current.version, "system": current.system, "template": current.template}


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
