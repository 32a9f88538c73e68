"""Generation REST API (/api/v1/projects/<slug>/prompt-sets|generators|generation-runs|candidates): leads only, 404
for anyone else. The same services as the pages."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user
from judging.access import judge_for_user

from .access import (
    candidate_for_user,
    generation_run_for_user,
    generator_for_user,
    prompt_set_for_user,
)
from .models import Candidate
from .selectors import (
    generators_of,
    human_rating_report,
    prompt_sets_of,
    run_progress,
    run_summary,
    runs_of,
)
from .serializers import (
    CandidateGoldSerializer,
    CandidateSerializer,
    GenerationRunRequestSerializer,
    GenerationRunSerializer,
    GeneratorSerializer,
    KtoRequestSerializer,
    PairsRequestSerializer,
    PromptSetSerializer,
    PromptSetUploadSerializer,
    RatingOpenSerializer,
)
from .services import (
    GENERATION_RUN_ACTIONS,
    GENERATOR_SETTINGS,
    PromptsRejected,
    QueueUnavailable,
    candidate_gold_set,
    generation_run_start,
    generator_create,
    generator_update,
    kto_rows,
    pairs_build,
    pairs_options,
    pairs_preview,
    prompt_set_upload,
    rating_open,
)

CANDIDATES_PAGE = 200
ERRORS = OpenApiResponse(description="Errors by field.")
RATING_STATE = OpenApiResponse(description="Whether people rate the set (k per candidate) and what they said: thumbs, "
                               "stars, agreement, calibration accuracy.")  # fmt: skip


class PromptSetListView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(responses={200: PromptSetSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(PromptSetSerializer(prompt_sets_of(project), many=True).data)

    @extend_schema(
        request={"multipart/form-data": PromptSetUploadSerializer},
        responses={201: PromptSetSerializer, 400: OpenApiResponse(description="Errors by line and field.")},
    )
    def post(self, request, slug):
        """Import a file of prompts into a new prompt set, all or nothing."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = PromptSetUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            prompt_set = prompt_set_upload(project=project, upload=data["file"], name=data["name"], user=request.user,
                                           file_format=data.get("file_format"))  # fmt: skip
        except PromptsRejected as exc:
            return Response({"detail": str(exc), "errors": exc.errors, "error_count": exc.count},
                            status=status.HTTP_400_BAD_REQUEST)  # fmt: skip
        return Response(PromptSetSerializer(prompt_set).data, status=status.HTTP_201_CREATED)


class PromptSetDetailView(APIView):
    @extend_schema(responses={200: PromptSetSerializer})
    def get(self, request, slug, prompt_set_id):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(PromptSetSerializer(prompt_set_for_user(request.user, project, prompt_set_id)).data)


class CandidateListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("after", int, description="Candidates with a larger id (paging).")],
                   responses={200: CandidateSerializer(many=True)})  # fmt: skip
    def get(self, request, slug, prompt_set_id):
        """The prompt set's candidates with their provenance, flags and ratings, 200 at a time by id."""
        project = project_for_user(request.user, slug, role=LEAD)
        prompt_set = prompt_set_for_user(request.user, project, prompt_set_id)
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            return Response({"after": ["must be an integer"]}, status=status.HTTP_400_BAD_REQUEST)
        rows = (
            Candidate.objects.filter(prompt__prompt_set=prompt_set, pk__gt=after)
            .select_related("prompt", "generator")
            .prefetch_related("ratings__judge")
            .order_by("pk")[:CANDIDATES_PAGE]
        )
        return Response(CandidateSerializer(rows, many=True).data)


class PairsView(APIView):
    @extend_schema(
        request=PairsRequestSerializer,
        responses={200: OpenApiResponse(description="Counts."), 201: OpenApiResponse(description="Pairs built.")},
    )
    def post(self, request, slug, prompt_set_id):
        """Preview (``dry_run``, the default) or build pairs from the prompt set's candidates."""
        project = project_for_user(request.user, slug, role=LEAD)
        prompt_set = prompt_set_for_user(request.user, project, prompt_set_id)
        serializer = PairsRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        dry_run = data.pop("dry_run")
        options = pairs_options(data)
        if dry_run:
            preview = pairs_preview(prompt_set=prompt_set, options=options)
            return Response({"pairs": len(preview.pairs), **_counts(preview)})
        result = pairs_build(prompt_set=prompt_set, options=options, user=request.user)
        return Response({"created": result.created, "already_in_project": result.already_in_project,
                         **_counts(result.preview)}, status=status.HTTP_201_CREATED)  # fmt: skip


def _counts(preview) -> dict:
    return {"prompts": preview.prompts, "prompts_without_pair": preview.prompts_without_pair,
            "left_out_flagged": preview.left_out_flagged, "left_out_unscored": preview.left_out_unscored,
            "already_in_project": preview.already_in_project}  # fmt: skip


class KtoView(APIView):
    @extend_schema(parameters=[KtoRequestSerializer], responses={200: OpenApiResponse(description="KTO rows.")})
    def get(self, request, slug, prompt_set_id):
        """Unpaired KTO rows from the candidates' scores, with KTOTrainer's class weights for the counts."""
        project = project_for_user(request.user, slug, role=LEAD)
        prompt_set = prompt_set_for_user(request.user, project, prompt_set_id)
        serializer = KtoRequestSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        result = kto_rows(prompt_set=prompt_set, **serializer.validated_data)
        return Response({"desirable": result.desirable, "undesirable": result.undesirable,
                         "desirable_weight": result.desirable_weight, "undesirable_weight": result.undesirable_weight,
                         "left_out_flagged": result.left_out_flagged, "rows": result.rows})  # fmt: skip


class GeneratorListView(APIView):
    @extend_schema(responses={200: GeneratorSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(GeneratorSerializer(generators_of(project), many=True).data)

    @extend_schema(request=GeneratorSerializer, responses={201: GeneratorSerializer})
    def post(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = GeneratorSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = {k: v for k, v in serializer.validated_data.items() if k in GENERATOR_SETTINGS}
        generator = generator_create(project=project, user=request.user, **values)
        return Response(GeneratorSerializer(generator).data, status=status.HTTP_201_CREATED)


class GeneratorDetailView(APIView):
    @extend_schema(responses={200: GeneratorSerializer})
    def get(self, request, slug, generator_id):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(GeneratorSerializer(generator_for_user(request.user, project, generator_id)).data)

    @extend_schema(request=GeneratorSerializer, responses={200: GeneratorSerializer, 400: ERRORS})
    def patch(self, request, slug, generator_id):
        """Change what is given (the generator's page: endpoint, model, prices, limits, kind, adapter)."""
        project = project_for_user(request.user, slug, role=LEAD)
        generator = generator_for_user(request.user, project, generator_id)
        serializer = GeneratorSerializer(generator, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        values = {k: v for k, v in serializer.validated_data.items() if k in GENERATOR_SETTINGS}
        return Response(GeneratorSerializer(generator_update(generator=generator, **values)).data)


class RunListView(APIView):
    @extend_schema(responses={200: GenerationRunSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(GenerationRunSerializer(runs_of(project), many=True).data)

    @extend_schema(
        request=GenerationRunRequestSerializer, responses={202: GenerationRunSerializer, 503: OpenApiResponse()}
    )
    def post(self, request, slug):
        """Start a run: the prompts are fixed now and sampled by workers (``judge`` queue for endpoints, ``gpu``
        for local checkpoints)."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = GenerationRunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        prompt_set = prompt_set_for_user(request.user, project, data["prompt_set"])
        generator = generator_for_user(request.user, project, data["generator"])
        rater = judge_for_user(request.user, project, data["rater"]) if data.get("rater") else None
        try:
            run = generation_run_start(
                project=project, prompt_set=prompt_set, generator=generator, rater=rater,
                plan=dict(data.get("plan", {})), limit=data.get("limit"), user=request.user,
            )  # fmt: skip
        except QueueUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(GenerationRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The run's progress, ledger and candidate summary.")})
    def get(self, request, slug, generation_run_id):
        project = project_for_user(request.user, slug, role=LEAD)
        run = generation_run_for_user(request.user, project, generation_run_id)
        return Response(
            {**GenerationRunSerializer(run).data, "progress": run_progress(run), "summary": run_summary(run)}
        )


class RunActionView(APIView):
    @extend_schema(operation_id="projects_generation_runs_action", request=None,
                   responses={200: GenerationRunSerializer, 404: OpenApiResponse()})  # fmt: skip
    def post(self, request, slug, generation_run_id, action):
        project = project_for_user(request.user, slug, role=LEAD)
        run = generation_run_for_user(request.user, project, generation_run_id)
        if action not in GENERATION_RUN_ACTIONS:
            return Response({"detail": "Unknown action."}, status=status.HTTP_404_NOT_FOUND)
        try:
            run = GENERATION_RUN_ACTIONS[action](run=run)
        except QueueUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(GenerationRunSerializer(run).data)


def _rating_state(prompt_set) -> dict:
    return {"rating_k": prompt_set.rating_k, "hide_identity_leaks": prompt_set.hide_identity_leaks,
            "report": human_rating_report(prompt_set, n_boot=200) if prompt_set.rating_k else None}  # fmt: skip


class PromptSetRatingView(APIView):
    @extend_schema(responses={200: RATING_STATE})
    def get(self, request, slug, prompt_set_id):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(_rating_state(prompt_set_for_user(request.user, project, prompt_set_id)))

    @extend_schema(request=RatingOpenSerializer, responses={200: RATING_STATE})
    def post(self, request, slug, prompt_set_id):
        """Open the set's candidates for people to rate, k people a candidate (k 0 closes it)."""
        project = project_for_user(request.user, slug, role=LEAD)
        prompt_set = prompt_set_for_user(request.user, project, prompt_set_id)
        serializer = RatingOpenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(_rating_state(rating_open(prompt_set=prompt_set, **serializer.validated_data)))


class CandidateGoldView(APIView):
    @extend_schema(operation_id="projects_candidates_gold", request=CandidateGoldSerializer,
                   responses={200: OpenApiResponse(description="The candidate's id and gold.")})  # fmt: skip
    def post(self, request, slug, candidate_id):
        """Make a candidate a calibration item with the expected thumbs, or a plain one again."""
        project = project_for_user(request.user, slug, role=LEAD)
        candidate = candidate_for_user(request.user, project, candidate_id)
        serializer = CandidateGoldSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        candidate = candidate_gold_set(candidate=candidate, gold=serializer.validated_data["gold"])
        return Response({"id": candidate.pk, "gold": candidate.gold})
