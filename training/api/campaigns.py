"""Campaigns REST API (/api/v1/training/campaigns/): admins launch, resume and cancel; a project's leads read
theirs; 404 for anyone else."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import F, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import project_for_user
from generation.models import PromptSet
from judging.models import JudgeConfig

from ..access import admin_or_404, campaign_for_user
from ..campaigns.control import campaign_cancel, campaign_create, campaign_resume
from ..campaigns.report import campaign_report
from ..models import CurationRecipe
from ..selectors import campaigns_visible_to
from ..serializers import CampaignRequestSerializer, CampaignSerializer


def _named(queryset, field: str, **lookup):
    """The project's object the request names, or a 400 naming the field."""
    found = queryset.filter(**lookup).first()
    if found is None:
        raise ValidationError({field: f"The project has no {field.replace('_', ' ')} {next(iter(lookup.values()))!r}."})
    return found


class CampaignListView(APIView):
    @extend_schema(responses={200: CampaignSerializer(many=True)})
    def get(self, request):
        """Every campaign for admins; a lead's projects' campaigns for a lead."""
        campaigns = campaigns_visible_to(request.user).prefetch_related("round_set")[:100]
        return Response(CampaignSerializer(campaigns, many=True).data)


class ProjectCampaignsView(APIView):
    @extend_schema(responses={200: CampaignSerializer(many=True)})
    def get(self, request, slug):
        project = project_for_user(request.user, slug, role="lead")
        campaigns = campaigns_visible_to(request.user).filter(project=project).prefetch_related("round_set")[:100]
        return Response(CampaignSerializer(campaigns, many=True).data)

    @extend_schema(request=CampaignRequestSerializer, responses={202: CampaignSerializer})
    def post(self, request, slug):
        """Check everything, split the prompts into rounds and start round 1 (admins only)."""
        admin_or_404(request.user)
        project = project_for_user(request.user, slug)
        data = CampaignRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        sets = PromptSet.objects.filter(project=project)
        values["prompt_set"] = _named(sets, "prompt_set", name=values["prompt_set"])
        eval_name = values.pop("eval_prompt_set", "")
        values["eval_prompt_set"] = _named(sets, "eval_prompt_set", name=eval_name) if eval_name else None
        values["recipe"] = _named(CurationRecipe.objects.filter(project=project), "recipe", pk=values["recipe"])
        judges = JudgeConfig.objects.filter(Q(project=project) | Q(project__isnull=True)).order_by(  # its own first
            F("project_id").asc(nulls_last=True)
        )
        values["judge"] = _named(judges, "judge", name=values["judge"])
        campaign = campaign_create(project=project, user=request.user, settings_=values.pop("settings", None),
                                   **values)  # fmt: skip
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_202_ACCEPTED)


class CampaignDetailView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The campaign, its rounds and the round-over-round "
                                                               "report.")})  # fmt: skip
    def get(self, request, campaign_id):
        campaign = campaign_for_user(request.user, campaign_id)
        return Response({**CampaignSerializer(campaign).data, "report": campaign_report(campaign)})


class CampaignResumeView(APIView):
    @extend_schema(request=None, responses={200: CampaignSerializer})
    def post(self, request, campaign_id):
        """Go on from the stage that stopped (or whose worker died); nothing written or paid for is redone."""
        campaign = campaign_for_user(request.user, campaign_id, manage=True)
        return Response(CampaignSerializer(campaign_resume(campaign=campaign, user=request.user)).data)


class CampaignCancelView(APIView):
    @extend_schema(request=None, responses={200: CampaignSerializer})
    def post(self, request, campaign_id):
        campaign = campaign_for_user(request.user, campaign_id, manage=True)
        return Response(CampaignSerializer(campaign_cancel(campaign=campaign)).data)
