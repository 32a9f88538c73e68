"""Curation and export REST API (/api/v1/projects/<slug>/recipes|exports): leads only, 404 for anyone else."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user
from annotation.drf import as_drf

from .access import export_for_user, recipe_for_user
from .models import CurationRecipe, DatasetExport
from .selectors import exports_of, recipes_of
from .services import export_create, recipe_preview, recipe_save


class RecipeSerializer(serializers.ModelSerializer):
    class Meta:
        model = CurationRecipe
        fields = ["id", "name", "version", "config", "created_at"]
        read_only_fields = ["version", "created_at"]


class ExportRequestSerializer(serializers.Serializer):
    recipe = serializers.IntegerField(help_text="The recipe version's id.")
    format = serializers.ChoiceField(choices=DatasetExport.Format.values)
    conversational = serializers.BooleanField(default=False)
    test_fraction = serializers.FloatField(default=0.1, min_value=0.0, max_value=0.9)
    seed = serializers.IntegerField(default=0, min_value=0)


class ExportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    recipe = RecipeSerializer(read_only=True)

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "recipe",
            "format",
            "conversational",
            "test_fraction",
            "seed",
            "state",
            "content_hash",
            "rows_train",
            "rows_test",
            "funnel",
            "files",
            "datasheet",
            "error",
            "created_at",
            "finished_at",
        ]


class RecipeListView(APIView):
    @extend_schema(responses={200: RecipeSerializer(many=True)})
    def get(self, request, slug):
        """The latest version of each recipe."""
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(RecipeSerializer(recipes_of(project), many=True).data)

    @extend_schema(request=RecipeSerializer, responses={201: RecipeSerializer})
    def post(self, request, slug):
        """Save a recipe (a changed config becomes its next version)."""
        project = project_for_user(request.user, slug, role=LEAD)
        data = RecipeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            recipe = recipe_save(project=project, name=data.validated_data["name"],
                                 config=data.validated_data["config"], user=request.user)  # fmt: skip
        except DjangoValidationError as exc:
            raise as_drf(exc) from None
        return Response(RecipeSerializer(recipe).data, status=status.HTTP_201_CREATED)


class PreviewView(APIView):
    @extend_schema(request=None, responses={200: OpenApiResponse(description="Funnel, margins, length share.")})
    def post(self, request, slug):
        """What a recipe config (the request body) would produce now; nothing is saved."""
        project = project_for_user(request.user, slug, role=LEAD)
        try:
            return Response(recipe_preview(project=project, config=dict(request.data)))
        except (ValueError, TypeError) as exc:
            raise ValidationError({"config": str(exc)}) from None


class ExportListView(APIView):
    @extend_schema(responses={200: ExportSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(ExportSerializer(exports_of(project), many=True).data)

    @extend_schema(request=ExportRequestSerializer, responses={201: ExportSerializer, 202: ExportSerializer})
    def post(self, request, slug):
        """Export a recipe version: built now for small projects (201), on a worker otherwise (202)."""
        project = project_for_user(request.user, slug, role=LEAD)
        data = ExportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        recipe = recipe_for_user(request.user, project, values.pop("recipe"))
        try:
            export = export_create(project=project, recipe=recipe, user=request.user, fmt=values.pop("format"),
                                   **values)  # fmt: skip
        except DjangoValidationError as exc:
            raise as_drf(exc) from None
        done = export.state == DatasetExport.State.SUCCEEDED
        return Response(ExportSerializer(export).data, status=status.HTTP_201_CREATED if done else 202)


class ExportDetailView(APIView):
    @extend_schema(responses={200: ExportSerializer})
    def get(self, request, slug, export_id):
        project = project_for_user(request.user, slug, role=LEAD)
        return Response(ExportSerializer(export_for_user(request.user, project, export_id)).data)
