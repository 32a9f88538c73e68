"""Training jobs REST API (/api/v1/training/jobs/): admins only; 404 for anyone else."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.drf import as_drf

from .access import admin_or_404, job_for_user
from .job_selectors import after_step, job_progress, jobs_recent
from .jobs import job_cancel, job_create
from .models import DatasetExport, TrainingJob
from .spec import PRESETS


class JobRequestSerializer(serializers.Serializer):
    export = serializers.UUIDField(help_text="The export's id.")
    preset = serializers.ChoiceField(choices=list(PRESETS), default="dpo-lora")
    name = serializers.CharField(required=False, allow_blank=True, default="")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="training.spec.JobSpec fields to change from the preset (base_model is "
                                               "required here or in the preset).")  # fmt: skip


class JobSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    export = serializers.UUIDField(source="export.public_id", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = TrainingJob
        fields = ["id", "name", "project", "export", "spec", "state", "stage", "step", "max_steps", "hardware",
                  "summary", "evaluation", "artifacts", "error", "created_at", "started_at", "finished_at"]  # fmt: skip


class JobListView(APIView):
    @extend_schema(responses={200: JobSerializer(many=True)})
    def get(self, request):
        admin_or_404(request.user)
        return Response(JobSerializer(jobs_recent(), many=True).data)

    @extend_schema(request=JobRequestSerializer, responses={202: JobSerializer})
    def post(self, request):
        """Validate and queue a job for a GPU worker."""
        admin_or_404(request.user)
        data = JobRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        export = DatasetExport.objects.filter(public_id=data.validated_data["export"]).select_related("project").first()
        if export is None:
            raise Http404("No such export.")
        try:
            job = job_create(export=export, user=request.user, preset=data.validated_data["preset"],
                             settings_=data.validated_data["settings"], name=data.validated_data["name"])  # fmt: skip
        except DjangoValidationError as exc:
            raise as_drf(exc) from None
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailView(APIView):
    @extend_schema(responses={200: JobSerializer})
    def get(self, request, job_id):
        return Response(JobSerializer(job_for_user(request.user, job_id)).data)


class JobProgressView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="State, step, ETA, metric rows after ?after=N.")})
    def get(self, request, job_id):
        job = job_for_user(request.user, job_id)
        return Response(job_progress(job, after_step=after_step(request.query_params.get("after"))))


class JobCancelView(APIView):
    @extend_schema(request=None, responses={200: JobSerializer})
    def post(self, request, job_id):
        """Cancel: a queued job ends now; a running one stops at its next step and keeps what was saved."""
        return Response(JobSerializer(job_cancel(job_for_user(request.user, job_id))).data)
