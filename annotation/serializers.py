from __future__ import annotations

from rest_framework import serializers

from .models import ImportBatch, Project
from .services.projects import PROJECT_SETTINGS


class ProjectSerializer(serializers.ModelSerializer):
    guidelines = serializers.CharField(write_only=True, required=False, allow_blank=True)
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", *PROJECT_SETTINGS, "guidelines", "role", "created_at"]
        read_only_fields = ["created_at", "role"]

    def get_role(self, obj) -> str | None:
        return getattr(obj, "user_role", None)


class ProjectSettingsSerializer(serializers.ModelSerializer):
    """A lead's change to a project's settings (PATCH): only the settings; anything else in the body is ignored."""

    class Meta:
        model = Project
        fields = list(PROJECT_SETTINGS)


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=["pairs", "dpo", "ultrafeedback"], required=False)
    ultrafeedback_pairs = serializers.ChoiceField(choices=["all", "best-vs-rest"], required=False, default="all")


class ImportBatchSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "filename",
            "state",
            "requested_format",
            "detected_format",
            "rows_read",
            "pairs_created",
            "duplicates_skipped",
            "labels_created",
            "error_count",
            "errors",
            "warnings",
            "created_at",
            "finished_at",
        ]


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class AssignmentSerializer(serializers.Serializer):
    """What an annotator's client receives: blinded (no pair id, no model names), sides in stored order."""

    id = serializers.UUIDField()
    prompt = MessageSerializer(many=True)
    left = serializers.CharField()
    right = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())
    strength_scale = serializers.ListField(child=serializers.CharField())
    criteria = serializers.ListField(child=serializers.CharField())
    rationale = serializers.CharField()
    expires_at = serializers.DateTimeField()
    practice = serializers.BooleanField(help_text="A practice item: the answer comes back with feedback.")

    @staticmethod
    def from_assignment(assignment) -> dict:
        pair, project = assignment.pair, assignment.project
        left, right = (pair.response_a, pair.response_b) if assignment.left_is_a else (pair.response_b, pair.response_a)
        screen = {"A": "left", "B": "right"}
        return {
            "id": assignment.public_id,
            "prompt": [{"role": m["role"], "content": m["content"]} for m in pair.prompt],
            "left": left,
            "right": right,
            "choices": [screen.get(c, c) for c in project.choices],
            "strength_scale": project.strength_scale,
            "criteria": project.criteria,
            "rationale": project.rationale_mode,
            "expires_at": assignment.expires_at,
            # Announced practice only; a calibration (gold) item looks exactly like a regular one.
            "practice": assignment.kind == assignment.Kind.PRACTICE,
        }


class LabelRequestSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=["left", "right", "tie", "both_bad"])
    strength = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    criteria = serializers.DictField(child=serializers.CharField(), required=False)
    time_on_item_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)


class PracticeFeedbackSerializer(serializers.Serializer):
    correct = serializers.BooleanField()
    expected = serializers.CharField(help_text="The expected answer in screen terms: left, right, tie, both_bad.")
    expected_text = serializers.CharField()
    answered = serializers.CharField()
    answered_text = serializers.CharField()
    explanation_html = serializers.CharField(help_text="The lead's explanation, rendered and sanitized.")


class LabelResponseSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    created = serializers.BooleanField()
    feedback = PracticeFeedbackSerializer(
        required=False, allow_null=True, help_text="Only after a practice item: the expected answer."
    )
    next = AssignmentSerializer(
        required=False, allow_null=True,
        help_text="Only with ?next=1: the annotator's next pair, claimed in the same request (null: nothing left), so "
        "labelling takes one round trip per pair.",
    )  # fmt: skip


class AnnotatorProgressSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField()
    labels = serializers.IntegerField()
    skips = serializers.IntegerField()
    active = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)


class ProgressSerializer(serializers.Serializer):
    pairs = serializers.IntegerField()
    labels = serializers.IntegerField()
    pairs_complete = serializers.IntegerField()
    pairs_started = serializers.IntegerField()
    target_labels = serializers.IntegerField()
    external_labels = serializers.IntegerField()
    annotators = AnnotatorProgressSerializer(many=True)
