"""Curation and export REST API (/api/v1/projects/<slug>/recipes|exports): leads only, 404 for anyone else."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user

from ..access import export_for_user, recipe_for_user
from ..models import DatasetExport
from ..selectors import exports_recent, recipes_latest
from ..serializers import ExportRequestSerializer, ExportSerializer, RecipeSerializer
from ..services.exports import export_create
from ..services.recipes import recipe_preview, recipe_save


class RecipeListView(APIView):
    @extend_schema(responses={200: RecipeSerializer(many=True)})
    def get(self, request, slug):
        """The latest version of each recipe."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(RecipeSerializer(recipes_latest(project), many=True).data)

    @extend_schema(request=RecipeSerializer, responses={201: RecipeSerializer})
    def post(self, request, slug):
        """Save a recipe (a changed config becomes its next version)."""
        project = project_for_user(request.user, slug, role=LEAD)
        data = RecipeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recipe = recipe_save(project=project, name=data.validated_data["name"],
                             config=data.validated_data["config"], user=request.user)  # fmt: skip
        return Response(RecipeSerializer(recipe).data, status=status.HTTP_201_CREATED)


class PreviewView(APIView):
    @extend_schema(request=None, responses={200: OpenApiResponse(description="Funnel, margins, length share.")})
    def post(self, request, slug):
        """What a recipe config (the request body) would produce now; nothing is saved."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(recipe_preview(project=project, config=dict(request.data)))


class ExportListView(APIView):
    @extend_schema(responses={200: ExportSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(ExportSerializer(exports_recent(project), many=True).data)

    @extend_schema(request=ExportRequestSerializer, responses={201: ExportSerializer, 202: ExportSerializer})
    def post(self, request, slug):
        """Export a recipe version: built now for small projects (201), on a worker otherwise (202)."""
        project = project_for_user(request.user, slug, role=LEAD)
        data = ExportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        recipe = recipe_for_user(request.user, project, values.pop("recipe"))
        export = export_create(project=project, recipe=recipe, user=request.user, fmt=values.pop("format"),
                               **values)  # fmt: skip
        done = export.state == DatasetExport.State.SUCCEEDED
        return Response(ExportSerializer(export).data, status=status.HTTP_201_CREATED if done else 202)


class ExportDetailView(APIView):
    @extend_schema(responses={200: ExportSerializer})
    def get(self, request, slug, export_id):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(ExportSerializer(export_for_user(request.user, project, export_id)).data)
