"""Training job pages (admins only): the list with the launch form, a job's live page, cancel and downloads."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.rendering import markdown_to_html

from .. import storage
from ..access import admin_or_404, job_for_user
from ..evaluations.card import evaluation_markdown
from ..forms import TrainingJobForm
from ..jobs.memory import describe as describe_plan
from ..jobs.spec import PRESETS
from ..selectors import (
    CHARTED,
    after_step,
    evaluations_of,
    exports_trainable,
    job_memory_plan,
    job_progress,
    jobs_recent,
)
from ..services.jobs import job_cancel, job_create, job_generator, job_reward_model
from .evaluations import evaluation_form


def launch_initial(request) -> dict:
    """A launch form's starting values (job or sweep): the export and preset of the link, and the local model."""
    initial = {key: request.GET[key] for key in ("export", "preset") if request.GET.get(key)}
    if settings.LOCAL_MODEL_PATH.is_file():  # the model `make run` serves: a job can start from it on any machine
        initial["base_model"] = str(settings.LOCAL_MODEL_PATH)
    return initial


@login_required
@require_http_methods(["GET", "POST"])
def jobs(request):
    admin_or_404(request.user)
    form = TrainingJobForm(request.POST or None, initial=launch_initial(request), exports=exports_trainable())
    if request.method == "POST" and form.is_valid():
        try:
            job = job_create(export=form.cleaned_data["export"], user=request.user, preset=form.cleaned_data["preset"],
                             settings_=form.settings(), name=form.cleaned_data["name"])  # fmt: skip
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Training job queued for a GPU worker.")
            return redirect("training:job_detail", job.public_id)
    return render(request, "training/jobs.html", {"form": form, "jobs": jobs_recent(), "presets": PRESETS})


@login_required
@require_GET
def job_detail(request, job_id):
    job = job_for_user(request.user, job_id)
    evaluations = list(evaluations_of(job))
    latest = next((e for e in evaluations if e.state == "succeeded"), None)
    card = job.model_card + ("\n" + evaluation_markdown(latest) if latest and job.model_card else "")
    return render(request, "training/job_detail.html", {
        "job": job, "progress": job_progress(job), "charted": CHARTED,
        "card_html": markdown_to_html(card) if job.model_card else "", "evaluations": evaluations,
        "latest": latest, "report": latest.report if latest else None, "evaluation_form": evaluation_form(job),
        "memory_plan": describe_plan(plan) if (plan := job_memory_plan(job)) else "",
    })  # fmt: skip


@login_required
@require_GET
def job_progress_json(request, job_id):
    job = job_for_user(request.user, job_id)
    return JsonResponse(job_progress(job, after_step=after_step(request.GET.get("after"))))


@login_required
@require_POST
def job_cancel_view(request, job_id):
    job = job_cancel(job=job_for_user(request.user, job_id))
    messages.info(request, "Cancelled." if job.state == "cancelled" else "The job stops at its next step.")
    return redirect("training:job_detail", job.public_id)


@login_required
@require_POST
def job_generator_view(request, job_id):
    """The job's model as a local generator of its project: candidates from the tuned model."""
    job = job_for_user(request.user, job_id)
    try:
        generator = job_generator(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("training:job_detail", job.public_id)
    messages.success(request, f"Generator {generator.name} is ready: start a run with it.")
    return redirect("generation:home", slug=job.project.slug)


@login_required
@require_POST
def job_reward_model_view(request, job_id):
    """A reward-model job's model as a scorer of its project (a judge of kind reward model)."""
    job = job_for_user(request.user, job_id)
    try:
        judge = job_reward_model(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("training:job_detail", job.public_id)
    messages.success(request, f"Scorer {judge.name} is ready: run it on pairs from the Judges page.")
    return redirect("judging:judges", slug=judge.project.slug)


@login_required
@require_GET
def job_download(request, job_id, name):
    return storage.job_download(job_for_user(request.user, job_id), name)
