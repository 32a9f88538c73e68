"""Evaluations REST API (/api/v1/training/...): admins only, like the jobs they evaluate; 404 for anyone else."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.models import PromptSet
from judging.selectors import judges_for

from ..access import evaluation_for_user, job_for_user
from ..models import TrainingJob
from ..selectors import evaluation_progress, evaluations_of
from ..serializers import EvaluationRequestSerializer, EvaluationSerializer
from ..services.evaluations import (
    evaluation_cancel,
    evaluation_refresh,
    evaluation_resume,
    evaluation_send_to_people,
    evaluation_start,
)


def _one(queryset, pk, field: str):
    if pk is None:
        return None
    found = queryset.filter(**{"public_id" if field == "baseline_job" else "pk": pk}).first()
    if found is None:
        raise ValidationError({field: "No such one in this project."})
    return found


class JobEvaluationsView(APIView):
    @extend_schema(responses={200: EvaluationSerializer(many=True)})
    def get(self, request, job_id):
        return Response(EvaluationSerializer(evaluations_of(job_for_user(request.user, job_id)), many=True).data)

    @extend_schema(request=EvaluationRequestSerializer, responses={202: EvaluationSerializer})
    def post(self, request, job_id):
        """Evaluate the finished job against its base model (or baseline_job's model): both answer the prompts,
        the judge compares them in both orders; the same request while that evaluation runs returns it."""
        job = job_for_user(request.user, job_id)
        data = EvaluationRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        evaluation = evaluation_start(
            job=job, user=request.user, judge=_one(judges_for(job.project), d.get("judge"), "judge"),
            prompt_set=_one(PromptSet.objects.filter(project=job.project), d.get("prompt_set"), "prompt_set"),
            baseline_job=_one(TrainingJob.objects.filter(project=job.project), d.get("baseline_job"), "baseline_job"),
            limit=d.get("limit"), plan=d.get("plan"),
        )  # fmt: skip
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailView(APIView):
    @extend_schema(responses={200: EvaluationSerializer})
    def get(self, request, evaluation_id):
        return Response(EvaluationSerializer(evaluation_for_user(request.user, evaluation_id)).data)


class EvaluationProgressView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="State, stage, error and each of its runs' counts.")})
    def get(self, request, evaluation_id):
        """What the evaluation page polls (its progress.json)."""
        return Response(evaluation_progress(evaluation_for_user(request.user, evaluation_id)))


class EvaluationActionView(APIView):
    @extend_schema(request=None, responses={200: EvaluationSerializer})
    def post(self, request, evaluation_id, action):
        """resume (go on after a failure, paying nothing twice), cancel, send (open the A/B pairs to annotators,
        blinded) or refresh (compute the report again, with people's labels)."""
        evaluation = evaluation_for_user(request.user, evaluation_id)
        if action == "resume":
            evaluation = evaluation_resume(evaluation=evaluation, user=request.user)
        elif action == "cancel":
            evaluation = evaluation_cancel(evaluation=evaluation)
        elif action == "send":
            evaluation = evaluation_send_to_people(evaluation=evaluation)
        elif action == "refresh":
            evaluation = evaluation_refresh(evaluation=evaluation)
        else:
            raise Http404("No such action.")
        return Response(EvaluationSerializer(evaluation).data)
