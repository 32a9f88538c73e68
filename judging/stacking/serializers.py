from __future__ import annotations

from rest_framework import serializers

from ..models import Composite, CompositeScore
from .combine import winner_of_value


class ScorerSerializer(serializers.Serializer):
    judge = serializers.CharField(help_text="The judge's id (or its name in the project).")
    weight = serializers.FloatField(default=1.0, help_text="Above 0.")


class AxisSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    weight = serializers.FloatField(default=1.0, help_text="Above 0.")
    scorers = ScorerSerializer(many=True)


class CompositeRequestSerializer(serializers.Serializer):
    """Shapes only: judging.stacking.services validates the rest (weights, judges, names)."""

    name = serializers.CharField(max_length=100)
    normalisation = serializers.ChoiceField(choices=Composite.Normalisation.choices, default="z")
    axes = AxisSerializer(many=True)


class CompositeSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    axes = serializers.SerializerMethodField()
    pairs = serializers.SerializerMethodField()

    class Meta:
        model = Composite
        fields = ["id", "name", "normalisation", "axes", "pairs", "created_at", "computed_at"]

    def get_axes(self, obj) -> list[dict]:
        """Judges by id and name (``judges``: {pk: JudgeConfig} in the context)."""
        judges = self.context.get("judges", {})

        def scorer(s):
            judge = judges.get(s["judge"])
            return {"judge": str(judge.public_id) if judge else None, "name": judge.name if judge else None,
                    "weight": s["weight"]}  # fmt: skip

        return [{"name": a["name"], "weight": a["weight"], "scorers": [scorer(s) for s in a["scorers"]]}
                for a in obj.axes]  # fmt: skip

    def get_pairs(self, obj) -> int | None:
        return (obj.stats or {}).get("pairs")


class CompositeScoreSerializer(serializers.ModelSerializer):
    pair_id = serializers.IntegerField()
    winner = serializers.SerializerMethodField()

    class Meta:
        model = CompositeScore
        fields = ["pair_id", "value", "winner", "axes"]

    def get_winner(self, obj) -> str:
        return winner_of_value(obj.value)
