"""Training jobs REST API (/api/v1/training/jobs/): admins only; 404 for anyone else."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from ..access import admin_or_404, job_for_user, trainable_export_for_user
from ..selectors import after_step, job_progress, jobs_recent
from ..serializers import JobRequestSerializer, JobSerializer
from ..services.jobs import job_cancel, job_create, job_generator, job_reward_model
from ..storage import job_download


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
        export = trainable_export_for_user(request.user, data.validated_data["export"])
        job = job_create(export=export, user=request.user, preset=data.validated_data["preset"],
                         settings_=data.validated_data["settings"], name=data.validated_data["name"])  # fmt: skip
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
        return Response(JobSerializer(job_cancel(job=job_for_user(request.user, job_id))).data)


class JobGeneratorView(APIView):
    @extend_schema(request=None, responses={201: OpenApiResponse(description="The generator's id and name.")})
    def post(self, request, job_id):
        """The finished job's model as a local generator of its project (the same one when asked twice)."""
        generator = job_generator(job=job_for_user(request.user, job_id), user=request.user)
        return Response({"id": str(generator.public_id), "name": generator.name, "project": generator.project.slug},
                        status=status.HTTP_201_CREATED)  # fmt: skip


class JobRewardModelView(APIView):
    @extend_schema(request=None, responses={201: OpenApiResponse(description="The scorer's id and name.")})
    def post(self, request, job_id):
        """The succeeded reward-model job as a scorer (a reward-model judge) of its project (the same one when asked
        twice)."""
        judge = job_reward_model(job=job_for_user(request.user, job_id), user=request.user)
        return Response({"id": str(judge.public_id), "name": judge.name, "project": judge.project.slug,
                         "trained_on": len(judge.trained_on)}, status=status.HTTP_201_CREATED)  # fmt: skip


class JobFilesView(APIView):
    @extend_schema(
        operation_id="training_jobs_files_list",
        responses={200: OpenApiResponse(description="The job's artifacts: name, bytes, download URL.")},
    )
    def get(self, request, job_id):
        """What the job wrote that can be downloaded (adapter files, model card, log), by name."""
        job = job_for_user(request.user, job_id)
        return Response([
            {"name": name, "bytes": entry.get("bytes"),
             "url": reverse("api-training-job-file", kwargs={"job_id": job.public_id, "name": name}, request=request)}
            for name, entry in job.artifacts.items()
        ])  # fmt: skip


class JobFileView(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                              404: OpenApiResponse(description="No such job or file.")})  # fmt: skip
    def get(self, request, job_id, name):
        """One of the job's artifacts, streamed as an attachment."""
        return job_download(job_for_user(request.user, job_id), name)
