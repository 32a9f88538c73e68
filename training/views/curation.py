"""Curation and export pages for a project's leads."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import LEAD, project_for_user
from annotation.rendering import markdown_to_html
from judging.stacking.selectors import composites_of

from .. import storage
from ..access import export_for_user, recipe_for_user
from ..forms import ExportForm, HubPushForm, RecipeForm
from ..selectors import exports_recent, recipes_latest
from ..services.exports import export_create
from ..services.hub import hub_push_start
from ..services.recipes import recipe_preview, recipe_save


@login_required
@require_http_methods(["GET", "POST"])
def curation(request, slug):
    """Build a recipe, preview what each step removes, save it as a version, and list the exports."""
    project = project_for_user(request.user, slug, role=LEAD)
    recipes = recipes_latest(project)
    chosen = next((r for r in recipes if r.name == request.GET.get("recipe")), None)
    initial = {"name": chosen.name, **chosen.config} if chosen else {"name": "default"}
    form = RecipeForm(request.POST or None, initial=initial, criteria=project.criteria,
                      composites=[c.name for c in composites_of(project)])  # fmt: skip
    preview = None
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") == "save":
            try:
                recipe = recipe_save(project=project, name=form.cleaned_data["name"], config=form.config(),
                                     user=request.user)  # fmt: skip
            except ValidationError as exc:
                form.add_error(None, exc.messages)  # keyed by config settings, not all of them form fields
            else:
                messages.success(request, f"Recipe {recipe.name} saved as version {recipe.version}.")
                return redirect(f"{request.path}?recipe={recipe.name}")
        else:
            try:
                preview = recipe_preview(project=project, config=form.config())
            except ValidationError as exc:
                form.add_error(None, exc.messages)
    return render(
        request, "training/curation.html",
        {"project": project, "form": form, "preview": preview, "recipes": recipes, "exports": exports_recent(project),
         "export_form": ExportForm()},
    )  # fmt: skip


@login_required
@require_POST
def export_new(request, slug, recipe_id):
    project = project_for_user(request.user, slug, role=LEAD)
    recipe = recipe_for_user(request.user, project, recipe_id)
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Export not started: " + "; ".join(" ".join(e) for e in form.errors.values()))
        return redirect("training:curation", slug=slug)
    try:
        data = form.cleaned_data
        export = export_create(project=project, recipe=recipe, user=request.user, fmt=data["format"],
                               conversational=data["conversational"], test_fraction=data["test_fraction"],
                               seed=data["seed"])  # fmt: skip
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("training:curation", slug=slug)
    return redirect("training:export_detail", slug=slug, export_id=export.public_id)


@login_required
def export_detail(request, slug, export_id):
    project = project_for_user(request.user, slug, role=LEAD)
    export = export_for_user(request.user, project, export_id)
    context = {"project": project, "export": export,
               "datasheet_html": markdown_to_html(export.datasheet_md) if export.datasheet_md else "",
               "pushes": export.hub_pushes.all()[:10], "push_form": HubPushForm()}  # fmt: skip
    template = "training/_export_status.html" if request.headers.get("HX-Request") else "training/export_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def export_push(request, slug, export_id):
    """Queue a push of the export to a Hugging Face Hub dataset repo (a worker pushes; the page shows its state)."""
    project = project_for_user(request.user, slug, role=LEAD)
    export = export_for_user(request.user, project, export_id)
    form = HubPushForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not pushed: " + "; ".join(" ".join(e) for e in form.errors.values()))
    else:
        try:
            push = hub_push_start(export=export, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, "Not pushed: " + " ".join(exc.messages))
        else:
            messages.success(request, f"Push to {push.repo_id} queued: a worker pushes it.")
    return redirect("training:export_detail", slug=slug, export_id=export.public_id)


@login_required
def export_download(request, slug, export_id, name):
    """A file of a finished export, as an attachment. Only names the export lists; never a path from the URL."""
    project = project_for_user(request.user, slug, role=LEAD)
    return storage.export_download(export_for_user(request.user, project, export_id), name)
