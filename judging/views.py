"""Judge pages for a project's leads: judges and reward models, starting runs, a run's live progress and report, a
scorer's audit."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import LEAD, project_for_user
from config.local_model import local_model_status

from .access import judge_for_user, run_for_user
from .audit import scorer_audit
from .forms import JudgeForm, RewardModelForm, RunStartForm
from .models import JudgeConfig
from .prompts import DEFAULT_SYSTEM, DEFAULT_TEMPLATE
from .selectors import judges_for, prompt_current, run_report, runs_of
from .services import (
    JUDGE_SETTINGS,
    QueueUnavailable,
    judge_create,
    judge_update,
    prompt_update,
    reward_model_create,
    run_cancel,
    run_pause,
    run_resume,
    run_start,
)


@login_required
@require_http_methods(["GET", "POST"])
def judges(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    available = judges_for(project)
    start = RunStartForm(request.POST or None, judges=available, prefix="run")
    if request.method == "POST" and start.is_valid():
        data = start.cleaned_data
        try:
            run = run_start(project=project, judge=data["judge"], user=request.user,
                            only_unlabelled=data["only_unlabelled"], limit=data["limit"])  # fmt: skip
        except (ValidationError, QueueUnavailable) as exc:
            start.add_error(None, exc.messages if isinstance(exc, ValidationError) else str(exc))
        else:
            return redirect("judging:run_detail", slug=slug, run_id=run.public_id)
    return render(
        request, "judging/judges.html",
        {"project": project, "judges": available, "runs": runs_of(project), "start": start,
         "local_model": local_model_status()},
    )  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def judge_edit(request, slug, judge_id=None):
    """Create a judge (no id) or change one; the prompt gets a new version whenever its text changes."""
    project = project_for_user(request.user, slug, role=LEAD)
    judge = judge_for_user(request.user, project, judge_id) if judge_id else None
    if judge is not None and judge.project_id is None and not request.user.is_staff:
        return render(request, "judging/judge_shared.html", {"project": project, "judge": judge})
    if judge is not None and judge.kind == JudgeConfig.Kind.REWARD_MODEL:
        return reward_model_edit(request, slug, judge_id)
    current = prompt_current(judge) if judge else None
    initial = {"system": current.system if current else DEFAULT_SYSTEM,
               "template": current.template if current else DEFAULT_TEMPLATE}  # fmt: skip
    form = JudgeForm(request.POST or None, instance=judge, initial=initial, can_share=request.user.is_staff)
    if request.method == "POST" and form.is_valid():
        values = {k: form.cleaned_data[k] for k in JUDGE_SETTINGS}
        text = {"system": form.cleaned_data["system"], "template": form.cleaned_data["template"]}
        try:
            if judge is None:
                shared = form.cleaned_data.get("shared", False)
                judge = judge_create(project=None if shared else project, user=request.user, **text, **values)
            else:
                judge = judge_update(judge=judge, **values)
                prompt_update(judge=judge, user=request.user, **text)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Judge {judge.name} saved.")
            return redirect("judging:judges", slug=slug)
    return render(request, "judging/judge_edit.html", {"project": project, "judge": judge, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def reward_model_edit(request, slug, judge_id=None):
    """Add a reward model (no id) or change its name, model or adapter."""
    project = project_for_user(request.user, slug, role=LEAD)
    judge = judge_for_user(request.user, project, judge_id) if judge_id else None
    if judge is not None and (judge.kind != JudgeConfig.Kind.REWARD_MODEL or
                              (judge.project_id is None and not request.user.is_staff)):  # fmt: skip
        raise Http404("No such reward model.")
    initial = {"name": judge.name, "model": judge.model, "adapter": judge.adapter} if judge else None
    form = RewardModelForm(request.POST or None, initial=initial, can_share=request.user.is_staff and judge is None)
    if request.method == "POST" and form.is_valid():
        values = {k: form.cleaned_data[k] for k in ("name", "model", "adapter")}
        try:
            if judge is None:
                shared = form.cleaned_data.get("shared", False)
                judge = reward_model_create(project=None if shared else project, user=request.user, **values)
            else:
                judge = judge_update(judge=judge, **values)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Reward model {judge.name} saved.")
            return redirect("judging:judges", slug=slug)
    return render(request, "judging/reward_model_edit.html", {"project": project, "judge": judge, "form": form})


@login_required
def scorer_audit_page(request, slug, judge_id):
    """A judge's or reward model's accuracy on the project's labelled pairs beside the length and position
    baselines."""
    project = project_for_user(request.user, slug, role=LEAD)
    judge = judge_for_user(request.user, project, judge_id)
    return render(request, "judging/audit.html", {"project": project, "judge": judge,
                                                  "report": scorer_audit(judge, project)})  # fmt: skip


def _progress(run) -> dict:
    end = run.finished_at or timezone.now()
    elapsed = (end - run.started_at).total_seconds() if run.started_at else 0
    return {
        "percent": 100 * run.verdicts_done / run.requests_planned if run.requests_planned else 0,
        "per_minute": 60 * (run.api_calls + run.cache_hits) / elapsed if elapsed > 0 else None,
        "live": run.state in run.LIVE,
    }


@login_required
def run_detail(request, slug, run_id):
    project = project_for_user(request.user, slug, role=LEAD)
    run = run_for_user(request.user, project, run_id)
    context = {"project": project, "run": run, "progress": _progress(run)}
    if request.headers.get("HX-Request"):
        return render(request, "judging/_run_status.html", context)
    context["report"] = run_report(run) if run.verdicts_done else None
    return render(request, "judging/run_detail.html", context)


@login_required
@require_POST
def run_action(request, slug, run_id, action):
    project = project_for_user(request.user, slug, role=LEAD)
    run = run_for_user(request.user, project, run_id)
    service = {"pause": run_pause, "resume": run_resume, "cancel": run_cancel}.get(action)
    if service is None:
        raise Http404("No such action.")
    try:
        service(run=run)
    except QueueUnavailable as exc:
        messages.error(request, str(exc))
    return redirect("judging:run_detail", slug=slug, run_id=run.public_id)
