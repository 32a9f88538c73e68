"""REST API (/api/v1/). Same services and access helpers as the pages: outsiders get 404."""

from __future__ import annotations

import uuid

from django.db import IntegrityError
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .access import (
    LEAD,
    assignment_for_user,
    can_create_projects,
    import_for_user,
    membership_for_user,
    pair_for_user,
    project_for_user,
    projects_visible_to,
)
from .errors import AnnotationError
from .feedback import practice_feedback
from .models import ImportBatch, Pair
from .quality.agreement import LABEL_SPACES
from .selectors import (
    annotator_counts,
    guideline_history,
    guidelines_current,
    imports_of,
    members_of,
    pair_labels,
    pair_verdicts,
    pairs_of,
    project_progress,
    project_quality,
)
from .serializers import (
    AssignmentSerializer,
    CalibrationResultSerializer,
    CalibrationSerializer,
    GuidelineVersionSerializer,
    ImportBatchSerializer,
    ImportRequestSerializer,
    LabelRequestSerializer,
    LabelResponseSerializer,
    MemberAddSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    PairDetailSerializer,
    PairFilterSerializer,
    PairListSerializer,
    ProgressSerializer,
    ProjectSerializer,
    ProjectSettingsSerializer,
)
from .services.assignment import assignment_next, assignment_skip
from .services.calibration import membership_reinstate, pair_gold_set
from .services.imports import upload_import
from .services.labels import Submission, label_submit
from .services.projects import guidelines_update, membership_remove, membership_set, project_create, project_update


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
    @extend_schema(responses={200: ImportBatchSerializer(many=True)})
    def get(self, request, slug):
        """The project's 50 latest imports, newest first (as the imports page lists them)."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(ImportBatchSerializer(imports_of(project), many=True).data)

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


# --- members, guidelines, pairs, calibration and the label dump: what a lead does on the pages ------------------


class MemberListView(APIView):
    @extend_schema(responses={200: MemberSerializer(many=True)})
    def get(self, request, slug):
        """The project's members with their role, pause state and label count (as the members page lists them)."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(MemberSerializer(members_of(project, with_label_counts=True), many=True).data)

    @extend_schema(
        request=MemberAddSerializer,
        responses={
            201: MemberSerializer,
            200: OpenApiResponse(MemberSerializer, description="Already a member: the role was set."),
            400: OpenApiResponse(description="No such active user: the error names the field (username or email)."),
        },
    )
    def post(self, request, slug):
        """Add a user by ``username`` or ``email`` with a ``role``, through the members page's service; a member
        already there gets the role."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = MemberAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, role = serializer.validated_data["user"], serializer.validated_data["role"]
        existed = members_of(project).filter(user=user).exists()
        membership = membership_set(project=project, user=user, role=role)
        return Response(MemberSerializer(membership).data, status=status.HTTP_200_OK if existed else 201)


class MemberDetailView(APIView):
    @extend_schema(
        request=MemberRoleSerializer,
        responses={200: MemberSerializer, 400: OpenApiResponse(description="Not a role: the error names `role`.")},
    )
    def patch(self, request, slug, user_id):
        """Change a member's role (the members page's service)."""
        project = project_for_user(request.user, slug, role=LEAD)
        membership = membership_for_user(request.user, project, user_id)
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = membership_set(project=project, user=membership.user, role=serializer.validated_data["role"])
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Removed."), 400: OpenApiResponse(description="Yourself.")},
    )
    def delete(self, request, slug, user_id):
        """Remove a member (not yourself); their finished labels stay."""
        project = project_for_user(request.user, slug, role=LEAD)
        membership = membership_for_user(request.user, project, user_id)
        membership_remove(project=project, user=membership.user, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberReinstateView(APIView):
    @extend_schema(request=None, responses={200: MemberSerializer})
    def post(self, request, slug, user_id):
        """Let a paused annotator work again (their labels count in consensus again)."""
        project = project_for_user(request.user, slug, role=LEAD)
        membership = membership_for_user(request.user, project, user_id)
        return Response(MemberSerializer(membership_reinstate(project=project, user=membership.user)).data)


class GuidelineListView(APIView):
    @extend_schema(responses={200: GuidelineVersionSerializer(many=True)})
    def get(self, request, slug):
        """Every version of the guidelines, newest first."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(GuidelineVersionSerializer(guideline_history(project), many=True).data)

    @extend_schema(
        request=GuidelineVersionSerializer,
        responses={
            201: GuidelineVersionSerializer,
            200: OpenApiResponse(GuidelineVersionSerializer, description="The same text as the current version: "
                                 "that version, nothing new."),
        },
    )  # fmt: skip
    def post(self, request, slug):
        """Save the guidelines (``body``, markdown) as a new version; labels record the version they were given
        under."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = GuidelineVersionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        current = guidelines_current(project)
        version = guidelines_update(project=project, body=serializer.validated_data["body"], user=request.user)
        created = current is None or version.pk != current.pk
        return Response(GuidelineVersionSerializer(version).data, status=201 if created else status.HTTP_200_OK)


class PairCursor(CursorPagination):
    # Ascending ids: pairs imported during a walk come at its end, so none is skipped or seen twice.
    ordering = "pk"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class PairListView(ListAPIView):
    serializer_class = PairListSerializer
    pagination_class = PairCursor

    @extend_schema(parameters=[PairFilterSerializer])
    def get(self, request, *args, **kwargs):
        """The project's pairs, oldest first, a cursor page at a time (follow ``next``), filtered as the pair
        browser filters (the same selector). Texts are raw: escape them before showing them."""
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular building the schema
            return Pair.objects.none()
        project = project_for_user(self.request.user, self.kwargs["slug"], role=LEAD)
        # A plain dict: from a QueryDict, DRF would read a missing boolean as false.
        filters = PairFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return pairs_of(project, **filters.selector_kwargs())


class PairDetailView(APIView):
    @extend_schema(responses={200: PairDetailSerializer})
    def get(self, request, slug, pair_id):
        """A pair with its model names, expected answer, labels (A/B terms) and judge verdicts. Texts are raw."""
        project = project_for_user(request.user, slug, role=LEAD)
        pair = pair_for_user(request.user, project, pair_id)
        context = {"labels": pair_labels(pair), "verdicts": pair_verdicts(pair)}
        return Response(PairDetailSerializer(pair, context=context).data)


class PairCalibrationView(APIView):
    @extend_schema(
        request=CalibrationSerializer,
        responses={
            200: CalibrationResultSerializer,
            400: OpenApiResponse(description="Not one of the project's choices: the error names `gold`."),
        },
    )
    def put(self, request, slug, pair_id):
        """Mark the pair as a calibration (gold) pair with its expected answer (one of the project's choices: A, B,
        tie, both_bad) and an explanation shown after practice items. It leaves the K pool."""
        project = project_for_user(request.user, slug, role=LEAD)
        pair = pair_for_user(request.user, project, pair_id)
        serializer = CalibrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        pair = pair_gold_set(pair=pair, gold=data["gold"], explanation=data["explanation"])
        return Response(CalibrationResultSerializer(pair).data)

    @extend_schema(request=None, responses={200: CalibrationResultSerializer})
    def delete(self, request, slug, pair_id):
        """Un-mark it: a regular pair again, back in the K pool."""
        project = project_for_user(request.user, slug, role=LEAD)
        pair = pair_gold_set(pair=pair_for_user(request.user, project, pair_id), gold="")
        return Response(CalibrationResultSerializer(pair).data)


class _FormatIsNotARenderer(DefaultContentNegotiation):
    """DRF reads ?format= as a renderer override (URL_FORMAT_OVERRIDE) and answers an unknown one with 404; here it
    names the dump's file format, and errors are JSON whatever it says."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class LabelDumpQuerySerializer(serializers.Serializer):
    format = serializers.CharField(required=False, default="jsonl")
    pseudonymize = serializers.BooleanField(required=False, default=False)


class LabelDumpView(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FormatIsNotARenderer

    @extend_schema(
        parameters=[
            OpenApiParameter("format", enum=["jsonl", "parquet"], default="jsonl",
                             description="The file format. `?format=` is this endpoint's own parameter here, not "
                             "DRF's renderer override: errors come back as JSON whatever it says."),
            OpenApiParameter("pseudonymize", bool, default=False,
                             description="Replace annotator names with annotator-<n> (rationales are not scrubbed)."),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY, description="One label a line."),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description="Parquet."),
            400: OpenApiResponse(description="An unknown format (the error names `format`) or pseudonymize value."),
        },
    )  # fmt: skip
    def get(self, request, slug):
        """Every label of the project (human and imported) as one file, streamed: a Content-Disposition attachment
        ``<slug>-labels.<format>``. Columns: annotation/label_dump.py."""
        project = project_for_user(request.user, slug, role=LEAD)
        params = LabelDumpQuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        # Imported here: it loads pyarrow, which no other request needs.
        from .label_dump import CONTENT_TYPES, label_dump

        fmt, pseudonymize = params.validated_data["format"], params.validated_data["pseudonymize"]
        if fmt not in CONTENT_TYPES:
            raise ValidationError({"format": [f"Use one of: {', '.join(CONTENT_TYPES)}."]})
        response = StreamingHttpResponse(
            label_dump(project, fmt=fmt, pseudonymize=pseudonymize), content_type=CONTENT_TYPES[fmt]
        )
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-labels.{fmt}"'
        return response
