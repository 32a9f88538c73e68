"""Curation and export REST API (/api/v1/projects/<slug>/recipes|exports): leads only, 404 for anyone else."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user

from ..access import export_for_user, recipe_for_user
from ..models import DatasetExport
from ..selectors import exports_recent, recipes_latest
from ..serializers import (
    ExportRequestSerializer,
    ExportSerializer,
    HubPushRequestSerializer,
    HubPushSerializer,
    RecipeSerializer,
)
from ..services.exports import export_create
from ..services.hub import hub_push_start
from ..services.recipes import recipe_preview, recipe_save
from ..storage import export_download


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


NO_FILE = OpenApiResponse(description="No such file (or the export is not finished).")


class ExportFileView(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: NO_FILE})
    def get(self, request, slug, export_id, name):
        """A file of a finished export (a name from its ``files``, e.g. train.parquet), streamed as an attachment."""
        project = project_for_user(request.user, slug, role=LEAD)
        return export_download(export_for_user(request.user, project, export_id), name)


class ExportPushView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("repo_id", str, description="Only pushes to this repo.")],
        responses={200: HubPushSerializer, 404: OpenApiResponse(description="Not pushed (to that repo) yet.")},
    )
    def get(self, request, slug, export_id):
        """The export's latest push to the Hugging Face Hub (to ``repo_id`` when given) and its state: what a client
        polls after POST until it has succeeded or failed."""
        project = project_for_user(request.user, slug, role=LEAD)
        export = export_for_user(request.user, project, export_id)
        pushes = export.hub_pushes.all()
        if request.query_params.get("repo_id"):
            pushes = pushes.filter(repo_id=request.query_params["repo_id"])
        push = pushes.first()
        if push is None:
            raise Http404("This export has not been pushed.")
        return Response(HubPushSerializer(push).data)

    @extend_schema(request=HubPushRequestSerializer, responses={202: HubPushSerializer, 400: OpenApiResponse(
        description="Errors by field.")})  # fmt: skip
    def post(self, request, slug, export_id):
        """Push the finished export to a Hub dataset repo on a worker: the Parquet splits, datasheet.json, and the
        datasheet as the dataset card. The token is read on the worker from the environment variable named by
        ``token_env``. Asked again while that push is under way, the same push is returned."""
        project = project_for_user(request.user, slug, role=LEAD)
        export = export_for_user(request.user, project, export_id)
        data = HubPushRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        push = hub_push_start(export=export, user=request.user, **data.validated_data)
        return Response(HubPushSerializer(push).data, status=status.HTTP_202_ACCEPTED)
