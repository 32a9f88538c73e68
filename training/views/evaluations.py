"""Evaluation pages (admins only, like training jobs): start one from a job's page, its report with the per-prompt
table, and its actions (resume, cancel, send to people, compute again)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.rendering import markdown_to_html
from generation.models import PromptSet
from judging.selectors import judges_for
from judging.services import QueueUnavailable

from ..access import evaluation_for_user, job_for_user
from ..evaluations.card import evaluation_markdown
from ..evaluations.flow import auto_judge
from ..forms import EvaluationForm
from ..models import TrainingJob
from ..selectors import evaluation_progress
from ..services.evaluations import (
    evaluation_cancel,
    evaluation_refresh,
    evaluation_resume,
    evaluation_send_to_people,
    evaluation_start,
)


def evaluation_form(job: TrainingJob, data=None) -> EvaluationForm:
    """The form, with the judge an automatic evaluation would use chosen (one rule for both)."""
    judge = auto_judge(job.project)
    return EvaluationForm(
        data, judges=judges_for(job.project), prompt_sets=PromptSet.objects.filter(project=job.project),
        jobs=TrainingJob.objects.filter(project=job.project, state__in=TrainingJob.HAS_MODEL).exclude(pk=job.pk)
        .exclude(spec__method="reward"),  # a reward model answers no prompts
        initial={"judge": judge.pk} if judge else None,
    )  # fmt: skip


@login_required
@require_POST
def evaluation_new(request, job_id):
    job = job_for_user(request.user, job_id)
    form = evaluation_form(job, request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("training:job_detail", job.public_id)
    data = form.cleaned_data
    try:
        evaluation = evaluation_start(job=job, user=request.user, judge=data["judge"], prompt_set=data["prompt_set"],
                                      baseline_job=data["baseline_job"], limit=data["limit"],
                                      plan=form.plan())  # fmt: skip
    except (ValidationError, QueueUnavailable) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("training:job_detail", job.public_id)
    return redirect("training:evaluation_detail", evaluation.public_id)


@login_required
@require_GET
def evaluation_detail(request, evaluation_id):
    evaluation = evaluation_for_user(request.user, evaluation_id)
    return render(request, "training/evaluation_detail.html", {
        "evaluation": evaluation, "report": evaluation.report, "progress": evaluation_progress(evaluation),
        "card_html": markdown_to_html(evaluation_markdown(evaluation)),
    })  # fmt: skip


@login_required
@require_GET
def evaluation_progress_json(request, evaluation_id):
    return JsonResponse(evaluation_progress(evaluation_for_user(request.user, evaluation_id)))


ACTIONS = {"resume": "Resumed: only what is missing is asked.", "cancel": "Cancelled.",
           "send": "Sent to the annotators of the evaluation project, blinded.",
           "refresh": "Report computed again."}  # fmt: skip


@login_required
@require_POST
def evaluation_action(request, evaluation_id, action):
    evaluation = evaluation_for_user(request.user, evaluation_id)
    if action not in ACTIONS:
        raise Http404("No such action.")
    try:
        if action == "resume":
            evaluation_resume(evaluation=evaluation, user=request.user)
        elif action == "cancel":
            evaluation_cancel(evaluation=evaluation)
        elif action == "send":
            evaluation_send_to_people(evaluation=evaluation)
        else:
            evaluation_refresh(evaluation=evaluation)
    except (ValidationError, QueueUnavailable) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, ACTIONS[action])
    return redirect("training:evaluation_detail", evaluation.public_id)
