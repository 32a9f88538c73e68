"""Composites REST API (/api/v1/projects/<slug>/composites/...): leads only, 404 for anyone else."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user

from ..access import composite_for_user
from ..models import JudgeConfig
from ..selectors import judges_for
from .selectors import composite_judges, composite_scores, composite_summary, composites_of
from .serializers import CompositeRequestSerializer, CompositeScoreSerializer, CompositeSerializer
from .services import composite_compute, composite_create, composite_update


def _judges(project) -> dict[int, JudgeConfig]:
    return {j.pk: j for j in judges_for(project)}


class CompositeListView(APIView):
    @extend_schema(responses={200: CompositeSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(CompositeSerializer(composites_of(project), many=True,
                                            context={"judges": _judges(project)}).data)  # fmt: skip

    @extend_schema(request=CompositeRequestSerializer, responses={201: CompositeSerializer})
    def post(self, request, slug):
        """Create a composite; scorers name judges of the project (or shared ones) by id or name."""
        project = project_for_user(request.user, slug, role=LEAD)
        serializer = CompositeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        axes = [{**axis, "scorers": [dict(s) for s in axis["scorers"]]} for axis in data["axes"]]
        composite = composite_create(project=project, user=request.user, name=data["name"], axes=axes,
                                     normalisation=data["normalisation"])  # fmt: skip
        return Response(CompositeSerializer(composite, context={"judges": _judges(project)}).data,
                        status=status.HTTP_201_CREATED)  # fmt: skip


class CompositeDetailView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The composite and its summary: per axis and "
                                                   "scorer, Spearman between axes, the extreme pairs.")})  # fmt: skip
    def get(self, request, slug, composite_id):
        project = project_for_user(request.user, slug, role=LEAD)
        composite = composite_for_user(request.user, project, composite_id)
        data = CompositeSerializer(composite, context={"judges": composite_judges(composite)}).data
        return Response({**data, "summary": composite_summary(composite)})

    @extend_schema(request=CompositeRequestSerializer, responses={200: CompositeSerializer, 400: OpenApiResponse(
        description="Errors by field.")})  # fmt: skip
    def patch(self, request, slug, composite_id):
        """Change the name, axes or normalisation (what is given). New axes or a new normalisation drop the stored
        scores until the next compute."""
        project = project_for_user(request.user, slug, role=LEAD)
        composite = composite_for_user(request.user, project, composite_id)
        serializer = CompositeRequestSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        axes = (
            [{**axis, "scorers": [dict(s) for s in axis["scorers"]]} for axis in data["axes"]]
            if "axes" in data
            else None
        )
        composite = composite_update(composite=composite, name=data.get("name"), axes=axes,
                                     normalisation=data.get("normalisation"))  # fmt: skip
        return Response(CompositeSerializer(composite, context={"judges": composite_judges(composite)}).data)


class CompositeComputeView(APIView):
    @extend_schema(request=None, responses={200: CompositeSerializer})
    def post(self, request, slug, composite_id):
        """Recompute every pair's composite from the scorers' current judgements (in the request)."""
        project = project_for_user(request.user, slug, role=LEAD)
        composite = composite_compute(composite=composite_for_user(request.user, project, composite_id))
        return Response(CompositeSerializer(composite, context={"judges": composite_judges(composite)}).data)


class ScorePages(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class CompositeScoresView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("order", enum=["pair", "-value", "value"], description="By pair id (default), strongest "
                             "A first (-value) or strongest B first (value)."),
            OpenApiParameter("page", int), OpenApiParameter("page_size", int),
        ],
        responses={200: CompositeScoreSerializer(many=True)},
    )  # fmt: skip
    def get(self, request, slug, composite_id):
        project = project_for_user(request.user, slug, role=LEAD)
        composite = composite_for_user(request.user, project, composite_id)
        order = request.query_params.get("order", "pair")
        if order not in ("pair", "-value", "value"):
            return Response({"order": "One of pair, -value, value."}, status=status.HTTP_400_BAD_REQUEST)
        pages = ScorePages()
        page = pages.paginate_queryset(composite_scores(composite, order=order), request, view=self)
        return pages.get_paginated_response(CompositeScoreSerializer(page, many=True).data)
