"""Campaign pages: the list with the launch form (admins launch; a project's leads follow theirs), a campaign's page
(each round stage by stage, the round-over-round report and chart), its live data, resume and cancel (admins)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.models import Membership
from generation.models import PromptSet
from judging.models import JudgeConfig

from ..access import campaign_for_user
from ..campaigns.control import campaign_cancel, campaign_create, campaign_resume
from ..campaigns.report import campaign_report
from ..forms import CampaignForm
from ..models import Campaign, CampaignRound, CurationRecipe
from ..selectors import campaigns_visible_to
from .jobs import launch_initial


def _form(request):
    return CampaignForm(
        request.POST or None,
        initial={k: v for k, v in launch_initial(request).items() if k == "base_model"},
        prompt_sets=PromptSet.objects.select_related("project").order_by("project__name", "name"),
        judges=JudgeConfig.objects.select_related("project").order_by("project__name", "name"),
        recipes=CurationRecipe.objects.select_related("project").order_by("project__name", "name", "-version"),
    )


def launch(request, form) -> Campaign | None:
    data = form.cleaned_data
    prompt_set = data["prompt_set"]
    try:
        return campaign_create(
            project=prompt_set.project, user=request.user, name=data["name"], base_model=data["base_model"],
            prompt_set=prompt_set, recipe=data["recipe"], rounds=data["rounds"], per_round=data["per_round"],
            judge=data["judge"], eval_prompts=data["eval_prompts"], reuse_prompts=data["reuse_prompts"],
            plan={"temperatures": [data["temperature"]], "samples": data["samples"], "max_tokens": data["max_tokens"]},
            pairing={"strategy": data["strategy"], "min_margin": data["min_margin"],
                     "include_flagged": data["include_flagged"]}, people_k=data["people_k"],
            people_minutes=data["people_minutes"], preset=data["preset"], settings_=data["settings"],
            reference=data["reference"], stop_win_rate=data["stop_win_rate"], stop_kl=data["stop_kl"],
            budget_usd=data["budget_usd"],
        )  # fmt: skip
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
    return None


@login_required
@require_http_methods(["GET", "POST"])
def campaigns(request):
    lead = Membership.objects.filter(user=request.user, role=Membership.Role.LEAD).exists()
    if not (request.user.is_staff or lead):
        raise Http404("No such page.")
    visible = campaigns_visible_to(request.user)
    form = _form(request) if request.user.is_staff else None
    if request.method == "POST":
        if form is None:
            raise Http404("No such page.")
        if form.is_valid() and (campaign := launch(request, form)) is not None:
            messages.success(request, f"Campaign started: round 1 of {campaign.rounds} is generating.")
            return redirect("training:campaign_detail", campaign.public_id)
    return render(request, "training/campaigns.html", {"form": form, "campaigns": visible[:50]})


def _rounds(campaign: Campaign) -> list[dict]:
    stages = [s for s in CampaignRound.Stage.values if s != CampaignRound.Stage.DONE]
    out = []
    for r in campaign.round_set.select_related("job", "export", "eval_base", "eval_previous", "generation_run",
                                               "judge_run"):  # fmt: skip
        at = stages.index(r.stage) if r.stage in stages else len(stages)
        out.append({
            "number": r.number, "stage": r.stage, "state": r.state, "detail": r.detail, "error": r.error,
            "stages": [{"name": s, "label": CampaignRound.Stage(s).label,
                        "status": "done" if i < at else ("failed" if r.state == "failed" else "waiting"
                                                         if r.state == "waiting" else "current") if i == at else
                        "todo"} for i, s in enumerate(stages)],
            "round": r,
        })  # fmt: skip
    return out


@login_required
@require_GET
def campaign_detail(request, campaign_id):
    campaign = campaign_for_user(request.user, campaign_id)
    return render(request, "training/campaign_detail.html", {
        "campaign": campaign, "rounds": _rounds(campaign), "report": campaign_report(campaign),
        "manage": request.user.is_staff,
    })  # fmt: skip


@login_required
@require_GET
def campaign_progress_json(request, campaign_id):
    campaign = campaign_for_user(request.user, campaign_id)
    rounds = [{k: v for k, v in r.items() if k != "round"} for r in _rounds(campaign)]
    return JsonResponse({"state": campaign.state, "stage": campaign.stage, "rounds": rounds,
                         "report": campaign_report(campaign)})  # fmt: skip


@login_required
@require_POST
def campaign_resume_view(request, campaign_id):
    campaign = campaign_resume(campaign=campaign_for_user(request.user, campaign_id, manage=True), user=request.user)
    messages.info(request, f"Resumed: {campaign.stage}.")
    return redirect("training:campaign_detail", campaign_id)


@login_required
@require_POST
def campaign_cancel_view(request, campaign_id):
    campaign_cancel(campaign=campaign_for_user(request.user, campaign_id, manage=True))
    messages.info(request, "Campaign cancelled: its runs, job and evaluations were stopped.")
    return redirect("training:campaign_detail", campaign_id)
