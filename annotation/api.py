"""REST API (/api/v1/). Same services and access helpers as the pages: outsiders get 404."""

from __future__ import annotations

import uuid

from django.db import IntegrityError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .access import (
    LEAD,
    assignment_for_user,
    can_create_projects,
    import_for_user,
    project_for_user,
    projects_visible_to,
)
from .errors import AnnotationError
from .feedback import practice_feedback
from .models import ImportBatch
from .quality.agreement import LABEL_SPACES
from .selectors import annotator_counts, project_progress, project_quality
from .serializers import (
    AssignmentSerializer,
    ImportBatchSerializer,
    ImportRequestSerializer,
    LabelRequestSerializer,
    LabelResponseSerializer,
    ProgressSerializer,
    ProjectSerializer,
    ProjectSettingsSerializer,
)
from .services.assignment import assignment_next, assignment_skip
from .services.imports import upload_import
from .services.labels import Submission, label_submit
from .services.projects import project_create, project_update


def _conflict(exc: AnnotationError) -> Response:
    return Response({"code": exc.code, "detail": exc.message}, status=status.HTTP_409_CONFLICT)


class ProjectListView(APIView):
    @extend_schema(responses=ProjectSerializer(many=True))
    def get(self, request):
        projects = projects_visible_to(request.user).order_by("name")
        return Response(ProjectSerializer(projects, many=True).data)

    @extend_schema(request=ProjectSerializer, responses={201: ProjectSerializer})
    def post(self, request):
        if not can_create_projects(request.user):
            raise PermissionDenied("You may not create projects.")
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        try:
            project = project_create(
                created_by=request.user, slug=data.pop("slug"), guidelines=data.pop("guidelines", ""), **data
            )
        except IntegrityError:
            raise ValidationError({"slug": ["A project with this slug exists."]}) from None
        project.user_role = LEAD
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(responses=ProjectSerializer)
    def get(self, request, slug):
        return Response(ProjectSerializer(project_for_user(request.user, slug)).data)

    @extend_schema(request=ProjectSettingsSerializer, responses=ProjectSerializer)
    def patch(self, request, slug):
        """Change settings (leads): the same service as the settings page. Fields that are not settings (slug,
        owner, dates) are ignored."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = ProjectSettingsSerializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = project_update(project=project, **serializer.validated_data)
        project.user_role = LEAD
        return Response(ProjectSerializer(project).data)


class ProgressView(APIView):
    @extend_schema(responses=ProgressSerializer)
    def get(self, request, slug):
        """Leads see the whole project; annotators only their own count."""
        project = project_for_user(request.user, slug)
        if project.user_role != LEAD:
            return Response(annotator_counts(project, request.user))
        return Response(ProgressSerializer(project_progress(project)).data)


class QualityView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="Agreement and bias audits (leads only).")})
    def get(self, request, slug):
        """Agreement (pairwise Cohen's kappa, Fleiss' kappa, Krippendorff's alpha, percent agreement, with 95%
        bootstrap CIs) and per-annotator audits (left-pick rate with a binomial test, longer-pick rate, time per item).
        ``?space=with_ties|full|decisive`` picks the label space (default with_ties)."""
        project = project_for_user(request.user, slug, role=LEAD)
        space = request.query_params.get("space", "with_ties")
        if space not in LABEL_SPACES:
            raise ValidationError({"space": [f"Use one of: {', '.join(LABEL_SPACES)}."]})
        return Response(project_quality(project, space=space))


class ImportView(APIView):
    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={201: ImportBatchSerializer, 202: ImportBatchSerializer, 400: ImportBatchSerializer},
    )
    def post(self, request, slug):
        """Import a file. Small files import in the request (201 or 400 with the error report); large ones are
        queued (202) — poll the batch URL."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = ImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = upload_import(
            project=project,
            user=request.user,
            upload=serializer.validated_data["file"],
            fmt=serializer.validated_data.get("format"),
            ultrafeedback_pairs=serializer.validated_data["ultrafeedback_pairs"],
        )
        code = {
            ImportBatch.State.QUEUED: status.HTTP_202_ACCEPTED,
            ImportBatch.State.FAILED: status.HTTP_400_BAD_REQUEST,
        }.get(batch.state, status.HTTP_201_CREATED)
        return Response(ImportBatchSerializer(batch).data, status=code)


class ImportDetailView(APIView):
    @extend_schema(responses=ImportBatchSerializer)
    def get(self, request, slug, batch_id):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(ImportBatchSerializer(import_for_user(request.user, project, batch_id)).data)


def _exclude(request) -> list[str]:
    """The ?exclude= assignment ids (at most 5) a client already has on screen or prefetched."""
    exclude = []
    for value in request.query_params.getlist("exclude")[:5]:
        try:
            exclude.append(str(uuid.UUID(value)))
        except ValueError:
            raise ValidationError({"exclude": ["Not an assignment id."]}) from None
    return exclude


class NextAssignmentView(APIView):
    @extend_schema(
        request=None, responses={200: AssignmentSerializer, 204: OpenApiResponse(description="Nothing left.")}
    )
    def post(self, request, slug):
        """Claim the next pair (or get the one you already hold). Pass ?exclude=<id> to prefetch another."""
        project = project_for_user(request.user, slug)
        try:
            assignment = assignment_next(project=project, annotator=request.user, exclude=_exclude(request))
        except AnnotationError as exc:
            return _conflict(exc)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # from_assignment already builds exactly the documented shape; no need to run it through the serializer.
        return Response(AssignmentSerializer.from_assignment(assignment))


class LabelView(APIView):
    @extend_schema(
        request=LabelRequestSerializer,
        parameters=[
            OpenApiParameter(
                "next", bool, description="Also claim and return the next pair (one round trip per label)."
            )
        ],  # fmt: skip
        responses={
            201: LabelResponseSerializer,
            200: LabelResponseSerializer,
            409: OpenApiResponse(description="Expired or already answered."),
        },
    )
    def post(self, request, slug, assignment_id):
        """Submit an answer in screen terms (left/right). Repeating the same answer is safe (200, created=false).
        With ?next=1 the answer carries the next pair (claimed as POST …/assignments/next/ would, ?exclude= alike):
        one round trip per label."""
        project = project_for_user(request.user, slug)
        assignment = assignment_for_user(request.user, assignment_id, project=project)
        serializer = LabelRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wants_next = request.query_params.get("next") in ("1", "true")
        exclude = _exclude(request) if wants_next else []  # a bad id is refused before anything is stored
        try:
            label, created = label_submit(assignment=assignment, submission=Submission(**serializer.validated_data))
        except AnnotationError as exc:
            return _conflict(exc)
        body = {"ok": True, "created": created, "feedback": practice_feedback(assignment, label)}
        if wants_next:
            try:
                following = assignment_next(project=project, annotator=request.user, exclude=exclude)
            except AnnotationError:  # e.g. the annotator was paused by the answer just given: no next pair
                following = None
            body["next"] = AssignmentSerializer.from_assignment(following) if following is not None else None
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SkipView(APIView):
    @extend_schema(request=None, responses={200: LabelResponseSerializer})
    def post(self, request, slug, assignment_id):
        project = project_for_user(request.user, slug)
        assignment = assignment_for_user(request.user, assignment_id, project=project)
        try:
            assignment_skip(assignment=assignment)
        except AnnotationError as exc:
            return _conflict(exc)
        return Response({"ok": True, "created": False})
