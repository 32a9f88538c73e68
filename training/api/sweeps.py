"""Sweeps REST API (/api/v1/training/sweeps/): admins only; 404 for anyone else."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import admin_or_404, job_for_user, sweep_for_user, trainable_export_for_user
from ..models import Sweep
from ..serializers import SweepRequestSerializer, SweepSerializer
from ..services.sweeps import sweep_cancel, sweep_create, sweep_promote
from ..sweeps.compare import sweep_comparison, sweep_curves
from ..sweeps.flow import sweeps_counted_runs


def comparison_json(sweep: Sweep, metric: str = "") -> dict:
    """The comparison page's table as JSON: runs in rank order with their figures and alarms."""
    comparison = sweep_comparison(sweep, metric)
    rows = [{k: v for k, v in row.items() if k != "job"} for row in comparison["rows"]]
    best = comparison["best"]
    return {
        "metric": comparison["metric"], "metric_label": comparison["metric_label"], "rows": rows,
        "best": best["id"] if best else None, "best_value": comparison["best_value"],
        "best_interval": comparison["best_interval"], "promoted": comparison["promoted"],
    }  # fmt: skip


class SweepListView(APIView):
    @extend_schema(responses={200: SweepSerializer(many=True)})
    def get(self, request):
        admin_or_404(request.user)
        return Response(SweepSerializer(Sweep.objects.select_related("export", "project")[:100], many=True).data)

    @extend_schema(request=SweepRequestSerializer, responses={202: SweepSerializer})
    def post(self, request):
        """Validate every run, then queue them all (nothing is queued when one is bad)."""
        admin_or_404(request.user)
        data = SweepRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        export = trainable_export_for_user(request.user, values.pop("export"))
        sweep = sweep_create(export=export, user=request.user, settings_=values.pop("settings"), **values)
        return Response(SweepSerializer(sweep).data, status=status.HTTP_202_ACCEPTED)


class SweepDetailView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The sweep and its runs ranked (?metric=...).")})
    def get(self, request, sweep_id):
        sweep = sweep_for_user(request.user, sweep_id)
        metric = request.query_params.get("metric", "")
        return Response({**SweepSerializer(sweep).data, "comparison": comparison_json(sweep, metric)})


class SweepProgressView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="Each run's logged series, the beta-KL points, "
                                                               "the runs per state, whether it is live.")})  # fmt: skip
    def get(self, request, sweep_id):
        """What the sweep page polls (its progress.json)."""
        sweep = sweep_for_user(request.user, sweep_id)
        return Response({**sweep_curves(sweep), "counts": sweeps_counted_runs(sweep)})


class SweepCancelView(APIView):
    @extend_schema(request=None, responses={200: SweepSerializer})
    def post(self, request, sweep_id):
        """Queued runs end now; the running one stops at its next step and keeps what it saved."""
        return Response(SweepSerializer(sweep_cancel(sweep=sweep_for_user(request.user, sweep_id))).data)


class PromoteSerializer(serializers.Serializer):
    job = serializers.UUIDField(help_text="A run of this sweep that ended with a model.")


class SweepPromoteView(APIView):
    @extend_schema(request=PromoteSerializer, responses={200: SweepSerializer})
    def post(self, request, sweep_id):
        sweep = sweep_for_user(request.user, sweep_id)
        data = PromoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = job_for_user(request.user, data.validated_data["job"])
        return Response(SweepSerializer(sweep_promote(sweep=sweep, job=job)).data)
