"""Judging REST API (/api/v1/projects/<slug>/judges|judge-runs): leads only, 404 for anyone else."""

from __future__ import annotations

import orjson
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user

from .access import judge_for_user, run_for_user
from .audit import scorer_audit
from .models import JudgeConfig
from .selectors import judges_for, prompt_current, run_report, run_verdicts, runs_of
from .serializers import JudgeDetailSerializer, JudgeSerializer, RunRequestSerializer, RunSerializer
from .services import (
    JUDGE_SETTINGS,
    QueueUnavailable,
    judge_create,
    judge_update,
    prompt_update,
    reward_model_create,
    run_cancel,
    run_pause,
    run_resume,
    run_start,
)


class JudgeListView(APIView):
    @extend_schema(responses={200: JudgeSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(JudgeSerializer(judges_for(project), many=True).data)

    @extend_schema(request=JudgeSerializer, responses={201: JudgeSerializer})
    def post(self, request, slug):
        """Create a judge for this project: an LLM judge (an endpoint), or with ``kind: reward_model`` a reward model
        (``model`` and an optional ``adapter``). ``shared: true`` (admins only) shares it with every project."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = JudgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("shared") and not request.user.is_staff:
            raise ValidationError({"shared": "Only admins share judges with every project."})
        owner = None if data.get("shared") else project
        if data.get("kind") == JudgeConfig.Kind.REWARD_MODEL:
            judge = reward_model_create(project=owner, user=request.user, name=data["name"], model=data["model"],
                                        adapter=data.get("adapter", ""))  # fmt: skip
            return Response(JudgeSerializer(judge).data, status=status.HTTP_201_CREATED)
        if not data.get("base_url"):
            raise ValidationError({"base_url": "An LLM judge needs its endpoint's URL."})
        text = {k: data[k] for k in ("system", "template") if k in data}
        judge = judge_create(project=owner, user=request.user, **text,
                             **{k: v for k, v in data.items() if k in JUDGE_SETTINGS})  # fmt: skip
        return Response(JudgeSerializer(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailView(APIView):
    @extend_schema(responses={200: JudgeDetailSerializer})
    def get(self, request, slug, judge_id):
        """A judge (or reward model) of the project or a shared one, with its current prompt."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(JudgeDetailSerializer(judge_for_user(request.user, project, judge_id)).data)

    @extend_schema(
        request=JudgeSerializer,
        responses={200: JudgeDetailSerializer, 400: OpenApiResponse(description="Errors by field."),
                   403: OpenApiResponse(description="A shared judge: only admins change it.")},
    )  # fmt: skip
    def patch(self, request, slug, judge_id):
        """Change what is given, as the judge's page does: settings (a new endpoint or model forgets the detected
        response format), and a new prompt version when ``system`` or ``template`` changes. A reward model changes
        its name only (its scores belong to its weights). Kind and sharing are fixed at creation."""
        project = project_for_user(request.user, slug, role=LEAD)
        judge = judge_for_user(request.user, project, judge_id)
        if judge.project_id is None and not request.user.is_staff:
            raise PermissionDenied("This judge is shared with every project: only admins change it.")
        serializer = JudgeSerializer(judge, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        now = {"kind": judge.kind, "shared": judge.project_id is None}
        fixed = {
            k: "Fixed when the judge was created: add another judge." for k in now if k in data and data[k] != now[k]
        }
        if fixed:
            raise ValidationError(fixed)
        values = {k: data[k] for k in (*JUDGE_SETTINGS, "adapter") if k in data}  # the service checks them per kind
        with transaction.atomic():  # a rejected template leaves the settings as they were
            if values:
                judge = judge_update(judge=judge, **values)
            if "system" in data or "template" in data:
                current = prompt_current(judge)
                prompt_update(judge=judge, user=request.user, system=data.get("system", current.system),
                              template=data.get("template", current.template))  # fmt: skip
        return Response(JudgeDetailSerializer(judge).data)


class RunListView(APIView):
    @extend_schema(responses={200: RunSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(RunSerializer(runs_of(project), many=True).data)

    @extend_schema(request=RunRequestSerializer, responses={202: RunSerializer, 503: OpenApiResponse()})
    def post(self, request, slug):
        """Start a run: the pairs are fixed now and judged by workers on the ``judge`` queue."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = RunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        judge = judge_for_user(request.user, project, data["judge"])
        try:
            run = run_start(project=project, judge=judge, user=request.user,
                            only_unlabelled=data["only_unlabelled"], limit=data.get("limit"))  # fmt: skip
        except QueueUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The run's progress, ledger and quality report.")})
    def get(self, request, slug, run_id):
        project = project_for_user(request.user, slug, role=LEAD)
        run = run_for_user(request.user, project, run_id)
        return Response({**RunSerializer(run).data, "report": run_report(run) if run.verdicts_done else None})


VERDICTS_JSONL = OpenApiResponse(
    OpenApiTypes.STR,
    description="One JSON object a line: pair_id, pair__external_id, order (ab: A shown first), status, winner, "
    "winner_slot, score_a, score_b, confidence, rationale, raw, tokens_in, tokens_out, from_cache, created_at.",
)


class RunVerdictsView(APIView):
    @extend_schema(responses={(200, "application/jsonl"): VERDICTS_JSONL})
    def get(self, request, slug, run_id):
        """The verdicts behind the run's report, streamed as JSONL (the page shows only the report)."""
        project = project_for_user(request.user, slug, role=LEAD)
        run = run_for_user(request.user, project, run_id)
        lines = (orjson.dumps(row) + b"\n" for row in run_verdicts(run).iterator(chunk_size=2000))
        response = StreamingHttpResponse(lines, content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="judge-run-{run.public_id}-verdicts.jsonl"'
        return response


class RunActionView(APIView):
    actions = {"pause": run_pause, "resume": run_resume, "cancel": run_cancel}

    @extend_schema(operation_id="projects_judge_runs_action", request=None,
                   responses={200: RunSerializer, 404: OpenApiResponse()})  # fmt: skip
    def post(self, request, slug, run_id, action):
        project = project_for_user(request.user, slug, role=LEAD)
        run = run_for_user(request.user, project, run_id)
        if action not in self.actions:
            return Response({"detail": "Unknown action."}, status=status.HTTP_404_NOT_FOUND)
        try:
            run = self.actions[action](run=run)
        except QueueUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(RunSerializer(run).data)


class JudgeAuditView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The scorer's accuracy on the project's labelled pairs "
                                                               "beside the length and position baselines, kappa with "
                                                               "the annotators, slices and warnings.")})  # fmt: skip
    def get(self, request, slug, judge_id):
        project = project_for_user(request.user, slug, role=LEAD)
        judge = judge_for_user(request.user, project, judge_id)
        return Response(scorer_audit(judge, project))
