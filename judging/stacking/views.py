"""Composite pages for a project's leads: the list, creating and changing one, computing it, and its page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import LEAD, project_for_user
from annotation.models import Pair
from annotation.rendering import markdown_to_html

from ..access import composite_for_user
from ..selectors import judges_for
from .axes import EXAMPLE, axes_text
from .forms import CompositeForm
from .selectors import composite_judges, composite_summary, composites_of
from .services import composite_compute, composite_create, composite_update


@login_required
def composites(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    return render(request, "judging/composites.html", {"project": project, "composites": composites_of(project)})


@login_required
@require_http_methods(["GET", "POST"])
def composite_edit(request, slug, composite_id=None):
    """Create a composite (no id) or change one (new axes or normalisation drop its scores until recomputed)."""
    project = project_for_user(request.user, slug, role=LEAD)
    composite = composite_for_user(request.user, project, composite_id) if composite_id else None
    initial = {}
    if composite is not None:
        names = {pk: j.name for pk, j in composite_judges(composite).items()}
        initial = {"name": composite.name, "normalisation": composite.normalisation,
                   "axes": axes_text(composite.axes, names)}  # fmt: skip
    form = CompositeForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if composite is None:
                composite = composite_create(project=project, user=request.user, name=data["name"],
                                             axes=data["axes"], normalisation=data["normalisation"])  # fmt: skip
            else:
                composite = composite_update(composite=composite, name=data["name"], axes=data["axes"],
                                             normalisation=data["normalisation"])  # fmt: skip
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Composite {composite.name} saved.")
            return redirect("judging:composite_detail", slug=slug, composite_id=composite.public_id)
    return render(request, "judging/composite_edit.html",
                  {"project": project, "composite": composite, "form": form, "example": EXAMPLE,
                   "judges": judges_for(project)})  # fmt: skip


def _rendered(pairs: dict[int, Pair], rows: list[dict]) -> list[dict]:
    """Score rows with their pair's texts as sanitised HTML (model output is untrusted: annotation.rendering)."""
    out = []
    for row in rows:
        pair = pairs.get(row["pair_id"])
        if pair is None:
            continue
        prompt = [{"role": m.get("role", "user"), "html": markdown_to_html(m.get("content", ""))} for m in pair.prompt]
        out.append({**row, "pair": pair, "prompt": prompt, "a_html": markdown_to_html(pair.response_a),
                    "b_html": markdown_to_html(pair.response_b)})  # fmt: skip
    return out


@login_required
def composite_detail(request, slug, composite_id):
    project = project_for_user(request.user, slug, role=LEAD)
    composite = composite_for_user(request.user, project, composite_id)
    summary = composite_summary(composite)
    ids = {row["pair_id"] for row in summary["top"] + summary["bottom"]}
    pairs = Pair.objects.filter(project=project, pk__in=ids).in_bulk()
    return render(request, "judging/composite_detail.html",
                  {"project": project, "composite": composite, "summary": summary,
                   "top": _rendered(pairs, summary["top"]), "bottom": _rendered(pairs, summary["bottom"])})  # fmt: skip


@login_required
@require_POST
def composite_compute_view(request, slug, composite_id):
    project = project_for_user(request.user, slug, role=LEAD)
    composite = composite_compute(composite=composite_for_user(request.user, project, composite_id))
    messages.success(request, f"Composite {composite.name} computed: {composite.stats.get('pairs', 0)} pairs.")
    return redirect("judging:composite_detail", slug=slug, composite_id=composite.public_id)
