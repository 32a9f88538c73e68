"""The getting-started page as JSON (/api/v1/projects/<slug>/pipeline/): leads only, 404 for anyone else."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import LEAD, project_for_user

from ..selectors import pipeline_stages


class PipelineView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The loop from import to evaluation: each stage's "
                                                   "count, detail, page, next action and whether it is done, and "
                                                   "the first stage not done.")})  # fmt: skip
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role=LEAD)
        stages = pipeline_stages(project, request.user)
        upcoming = next((s.name for s in stages if not s.done), None)
        return Response({"stages": [asdict(s) for s in stages], "next": upcoming})
