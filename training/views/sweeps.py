"""Sweep pages (admins only, like training jobs): the list with the launch form, a sweep's comparison page (runs
ranked, curves overlaid, the β–KL plot), its live data, cancel and promote."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..access import admin_or_404, job_for_user, sweep_for_user
from ..forms import SweepForm
from ..models import Sweep
from ..selectors import exports_trainable
from ..services.sweeps import sweep_cancel, sweep_create, sweep_promote
from ..sweeps.compare import sweep_comparison, sweep_curves
from ..sweeps.flow import gpu_seconds, sweeps_counted_runs
from .jobs import launch_initial


@login_required
@require_http_methods(["GET", "POST"])
def sweeps(request):
    admin_or_404(request.user)
    form = SweepForm(request.POST or None, initial=launch_initial(request), exports=exports_trainable())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sweep = sweep_create(
                export=data["export"], user=request.user, axes=data["axes"], preset=data["preset"],
                settings_={**data["settings"], "base_model": data["base_model"]}, mode=data["mode"],
                draws=data["draws"] or 0, seed=data["seed"], max_runs=data["max_runs"],
                budget_minutes=data["budget_minutes"], metric=data["metric"], name=data["name"],
                prune_at=data["prune_at"] or 0.0,
            )  # fmt: skip
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Sweep queued: {sweep.jobs.count()} runs for the GPU workers.")
            return redirect("training:sweep_detail", sweep.public_id)
    recent = Sweep.objects.select_related("export", "export__recipe", "project").annotate(runs=Count("jobs"))[:50]
    return render(request, "training/sweeps.html", {"form": form, "sweeps": recent})


@login_required
@require_GET
def sweep_detail(request, sweep_id):
    sweep = sweep_for_user(request.user, sweep_id)
    comparison = sweep_comparison(sweep, request.GET.get("metric", ""))
    return render(request, "training/sweep_detail.html", {
        "sweep": sweep, "comparison": comparison, "curves": sweep_curves(sweep, comparison),
        "counts": sweeps_counted_runs(sweep),
        "gpu_minutes": gpu_seconds(sweep) / 60,
    })  # fmt: skip


@login_required
@require_GET
def sweep_progress_json(request, sweep_id):
    sweep = sweep_for_user(request.user, sweep_id)
    return JsonResponse({**sweep_curves(sweep), "counts": sweeps_counted_runs(sweep)})


@login_required
@require_POST
def sweep_cancel_view(request, sweep_id):
    sweep_cancel(sweep=sweep_for_user(request.user, sweep_id))
    messages.info(request, "Sweep cancelled: queued runs ended, the running one stops at its next step.")
    return redirect("training:sweep_detail", sweep_id)


@login_required
@require_POST
def sweep_promote_view(request, sweep_id):
    sweep = sweep_for_user(request.user, sweep_id)
    try:
        job = job_for_user(request.user, request.POST.get("job"))
        sweep_promote(sweep=sweep, job=job)
    except Http404:
        messages.error(request, "Choose a run of this sweep to promote.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Promoted {job.name or job.public_id}.")
    return redirect("training:sweep_detail", sweep_id)
