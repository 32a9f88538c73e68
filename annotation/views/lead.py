"""Project pages: list, create, overview with progress, settings, guidelines, members, imports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from ..access import (
    LEAD,
    can_create_projects,
    import_for_user,
    membership_for_user,
    project_for_user,
    projects_visible_to,
)
from ..forms import GuidelinesForm, ImportForm, MemberAddForm, ProjectCreateForm, ProjectSettingsForm
from ..imports.importer import import_progress
from ..quality.agreement import DEFAULT_SPACE, LABEL_SPACES
from ..rendering import markdown_to_html
from ..selectors import (
    annotator_counts,
    guideline_history,
    guidelines_current,
    imports_of,
    members_of,
    project_progress,
    project_quality,
)
from ..services.calibration import membership_reinstate
from ..services.imports import upload_import
from ..services.projects import (
    PROJECT_SETTINGS,
    guidelines_update,
    membership_remove,
    membership_set,
    project_create,
    project_update,
)


@login_required
def project_list(request):
    projects = projects_visible_to(request.user).order_by("name")
    return render(
        request,
        "annotation/project_list.html",
        {"projects": projects, "can_create": can_create_projects(request.user)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request):
    if not can_create_projects(request.user):
        raise PermissionDenied
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            project = project_create(
                created_by=request.user,
                slug=data.pop("slug"),
                guidelines=data.pop("guidelines"),
                **data,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Created {project.name}.")
            return redirect("annotation:project_detail", slug=project.slug)
    return render(request, "annotation/project_new.html", {"form": form})


@login_required
def project_detail(request, slug):
    project = project_for_user(request.user, slug)
    context = {"project": project, "is_lead": project.user_role == LEAD}
    if project.user_role == LEAD:
        context["progress"] = project_progress(project)
    else:
        context["counts"] = annotator_counts(project, request.user)
    return render(request, "annotation/project_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    form = ProjectSettingsForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        try:
            project_update(project=project, **{k: form.cleaned_data[k] for k in PROJECT_SETTINGS})
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("annotation:project_detail", slug=slug)
    return render(request, "annotation/project_settings.html", {"project": project, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def guidelines(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    current = guidelines_current(project)
    form = GuidelinesForm(request.POST or None, initial={"body": current.body if current else ""})
    if request.method == "POST" and form.is_valid():
        version = guidelines_update(project=project, body=form.cleaned_data["body"], user=request.user)
        messages.success(request, f"Guidelines saved as version {version.version}.")
        return redirect("annotation:guidelines", slug=slug)
    history = guideline_history(project)
    return render(
        request,
        "annotation/guidelines.html",
        {
            "project": project,
            "form": form,
            "history": history,
            "current_html": markdown_to_html(current.body) if current else "",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def members(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership_set(project=project, user=form.cleaned_data["username"], role=form.cleaned_data["role"])
        messages.success(request, f"{form.cleaned_data['username'].username} added as {form.cleaned_data['role']}.")
        return redirect("annotation:members", slug=slug)
    return render(
        request, "annotation/members.html", {"project": project, "form": form, "members": members_of(project)}
    )


def _member_for_lead(user, slug, user_id):
    """(project, membership) for a lead of the project; 404 for anyone else or an unknown member."""
    project = project_for_user(user, slug, role=LEAD)
    return project, membership_for_user(user, project, user_id)


@login_required
@require_POST
def member_remove(request, slug, user_id):
    project, membership = _member_for_lead(request.user, slug, user_id)
    try:
        membership_remove(project=project, user=membership.user, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Removed {membership.user.username}.")
    return redirect("annotation:members", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def imports(request, slug):
    """Upload a file. Small files import during the request (instant feedback); large ones go to a worker and the
    page shows progress."""
    project = project_for_user(request.user, slug, role=LEAD)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = upload_import(
                project=project,
                user=request.user,
                upload=form.cleaned_data["file"],
                fmt=form.cleaned_data["format"] or None,
                ultrafeedback_pairs=form.cleaned_data["ultrafeedback_pairs"] or "all",
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("annotation:import_detail", slug=slug, batch_id=batch.public_id)
    return render(
        request, "annotation/imports.html", {"project": project, "form": form, "batches": imports_of(project)}
    )


@login_required
def import_detail(request, slug, batch_id):
    project = project_for_user(request.user, slug, role=LEAD)
    batch = import_for_user(request.user, project, batch_id)
    template = (
        "annotation/_import_status.html" if request.headers.get("HX-Request") else "annotation/import_detail.html"
    )
    return render(
        request,
        template,
        {
            "project": project,
            "batch": batch,
            "progress": import_progress(batch),
            "more_errors": max(batch.error_count - len(batch.errors), 0),
        },
    )


@login_required
def quality(request, slug):
    """The lead's quality dashboard: agreement with CIs, a kappa heatmap and the per-annotator audit table."""
    project = project_for_user(request.user, slug, role=LEAD)
    space = request.GET.get("space", DEFAULT_SPACE)
    if space not in LABEL_SPACES:
        space = DEFAULT_SPACE
    report = project_quality(project, space=space)
    heatmap = {
        "annotators": list(report["mean_kappa_by_annotator"]),
        "cells": [
            {"x": p["annotator_a"], "y": p["annotator_b"], "v": p["kappa"], "n": p["shared_items"]}
            for p in report["pairwise_cohen_kappa"]
        ],
    }
    sides = [{"name": n, "left": a["left_pick_rate"]} for n, a in report["per_annotator"].items()]
    drift = [
        {"name": n, "series": a["rolling_series"], "start": a.get("rolling_series_start", 0)}
        for n, a in report["per_annotator"].items()
        if a["rolling_series"]
    ]
    return render(
        request,
        "annotation/quality.html",
        {
            "project": project,
            "report": report,
            "space": space,
            "spaces": list(LABEL_SPACES),
            "chart_data": {"heatmap": heatmap, "sides": sides, "drift": drift},
        },
    )


@login_required
@require_POST
def member_reinstate(request, slug, user_id):
    project, membership = _member_for_lead(request.user, slug, user_id)
    membership_reinstate(project=project, user=membership.user)
    messages.success(request, f"{membership.user.username} is reinstated.")
    return redirect("annotation:members", slug=slug)
