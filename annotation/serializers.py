from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import GuidelineVersion, ImportBatch, Membership, Pair, Project
from .selectors import user_to_add
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


class MemberSerializer(serializers.Serializer):
    """A membership as a lead sees it (the members page's columns, and the member's label count)."""

    user_id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    paused = serializers.SerializerMethodField()
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_reason = serializers.CharField()
    labels = serializers.IntegerField(required=False, help_text="The member's labels in this project (lists only).")
    created_at = serializers.DateTimeField()

    def get_paused(self, obj) -> bool:
        return obj.paused_at is not None


class MemberAddSerializer(serializers.Serializer):
    """Add a member (or change the role of one) by username or by e-mail, as the members page does."""

    username = serializers.CharField(required=False, max_length=150)
    email = serializers.EmailField(required=False)
    role = serializers.ChoiceField(choices=Membership.Role.choices)

    def validate(self, data):
        if bool(data.get("username")) == bool(data.get("email")):
            raise serializers.ValidationError({"username": ["Give a username or an e-mail address (one of them)."]})
        field = "username" if data.get("username") else "email"
        user = user_to_add(**{field: data[field]})
        if user is None:
            raise serializers.ValidationError({field: [self.NOT_FOUND[field]]})
        return {"user": user, "role": data["role"]}

    NOT_FOUND = {
        "username": "No active user with this username.",
        "email": "No active user with this e-mail address (or several share it: give the username).",
    }


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class GuidelineVersionSerializer(serializers.ModelSerializer):
    # Trimmed, as the guidelines page's form trims it: the same text through either door is the same version.
    body = serializers.CharField(allow_blank=True, help_text="Markdown.")
    author = serializers.SlugRelatedField(source="created_by", slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = GuidelineVersion
        fields = ["version", "body", "author", "created_at"]
        read_only_fields = ["version", "created_at"]


class PairFilterSerializer(serializers.Serializer):
    """The pair list's query parameters (the pair browser's filters and more); every one optional."""

    labelled = serializers.BooleanField(required=False, help_text="With at least one label (true) or none (false).")
    complete = serializers.BooleanField(required=False, help_text="With at least K labels (true) or fewer (false).")
    calibration = serializers.BooleanField(required=False, help_text="Calibration (gold) pairs only, or none of them.")
    source = serializers.CharField(required=False, max_length=200,
                                   help_text="An import batch's id, or a `source` in the pairs' metadata.")  # fmt: skip
    has_judge = serializers.CharField(required=False, help_text="A judge's id (judged by it), true (by any judge) or "
                                      "false (by none).")  # fmt: skip
    q = serializers.CharField(required=False, max_length=200, help_text="The external id, or a substring of the "
                              "prompt or a response (as the pair browser's search).")  # fmt: skip

    def validate_has_judge(self, value):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        try:
            return uuid.UUID(value)
        except ValueError:
            raise serializers.ValidationError("Give a judge id, true or false.") from None

    def selector_kwargs(self) -> dict:
        """The validated filters as annotation.selectors.pairs_of takes them."""
        data = self.validated_data
        calibration = data.get("calibration")
        return {
            "gold": "" if calibration is None else ("yes" if calibration else "no"),
            "query": data.get("q", "").strip(),
            "labelled": data.get("labelled"),
            "complete": data.get("complete"),
            "source": data.get("source", ""),
            "judged": data.get("has_judge"),
        }


class PairListSerializer(serializers.ModelSerializer):
    """A pair in the list: only what annotation.selectors.pairs_of loads (model output is raw text, never HTML)."""

    gold = serializers.CharField(help_text="The expected answer (A, B, tie, both_bad), empty if not calibration.")

    class Meta:
        model = Pair
        fields = ["id", "external_id", "prompt", "gold", "label_count", "open_slots", "created_at"]


class PairLabelSerializer(serializers.Serializer):
    """A label on a pair, in A/B terms (``left_is_a`` says which side A was shown on; null for imported labels)."""

    annotator = serializers.CharField(source="annotator.username", allow_null=True, default=None)
    external_annotator = serializers.CharField()
    source = serializers.CharField()
    kind = serializers.SerializerMethodField(help_text="The assignment's kind, or imported.")
    choice = serializers.CharField(help_text="A, B, tie or both_bad: in A/B terms, never screen sides.")
    left_is_a = serializers.BooleanField(allow_null=True)
    strength = serializers.IntegerField(allow_null=True)
    rationale = serializers.CharField()
    criteria = serializers.DictField(child=serializers.CharField())
    time_on_item_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_kind(self, obj) -> str:
        return obj.assignment.kind if obj.assignment_id else "imported"


class PairVerdictSerializer(serializers.Serializer):
    """A judge's verdict on a pair in one order: ``choice`` in pair terms (A, B or tie; empty when unparseable)."""

    judge = serializers.UUIDField(source="judge.public_id")
    judge_name = serializers.CharField(source="judge.name")
    judge_model = serializers.CharField(source="judge.model")
    prompt_version = serializers.IntegerField(source="prompt_version.version")
    order = serializers.CharField(help_text="ab: A shown first; ba: B shown first.")
    status = serializers.CharField()
    choice = serializers.CharField(source="winner")
    score_a = serializers.FloatField(allow_null=True)
    score_b = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField(allow_null=True)
    rationale = serializers.CharField()
    created_at = serializers.DateTimeField()


class PairDetailSerializer(serializers.ModelSerializer):
    """A pair as its lead sees it, with its labels and judge verdicts. Texts are raw, as imported or generated: a
    client that shows them must escape them."""

    # Plain strings, not enums: gold and source_preference share Choice's values (one enum under two names).
    gold = serializers.CharField(help_text="The expected answer (A, B, tie, both_bad), empty if not calibration.")
    source_preference = serializers.CharField(help_text="The source file's preference (DPO order), if any.")
    import_batch = serializers.UUIDField(source="import_batch.public_id", allow_null=True, default=None)
    labels = serializers.SerializerMethodField()
    verdicts = serializers.SerializerMethodField()

    class Meta:
        model = Pair
        fields = ["id", "external_id", "prompt", "prompt_is_chat", "response_a", "response_b", "model_a", "model_b",
                  "metadata", "source_preference", "gold", "gold_explanation", "label_count", "open_slots",
                  "import_batch", "created_at", "labels", "verdicts"]  # fmt: skip

    # The view reads them with the pair detail page's selectors and passes them in the context.
    @extend_schema_field(PairLabelSerializer(many=True))
    def get_labels(self, obj):
        return PairLabelSerializer(self.context["labels"], many=True).data

    @extend_schema_field(PairVerdictSerializer(many=True))
    def get_verdicts(self, obj):
        return PairVerdictSerializer(self.context["verdicts"], many=True).data


class CalibrationSerializer(serializers.Serializer):
    """A pair's expected answer (A/B terms) and why; the project's choices decide which answers are allowed."""

    gold = serializers.CharField(max_length=8)
    explanation = serializers.CharField(required=False, allow_blank=True, default="", help_text="Markdown.")


class CalibrationResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    gold = serializers.CharField()
    explanation = serializers.CharField(source="gold_explanation")
    open_slots = serializers.IntegerField()
