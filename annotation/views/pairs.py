"""The lead's pair browser: find pairs, see their labels, mark calibration (gold) pairs with the expected answer."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ..access import LEAD, pair_for_user, project_for_user
from ..forms import PairGoldForm
from ..rendering import markdown_to_html
from ..selectors import PAIRS_PER_PAGE, pair_labels, pairs_of
from ..services.calibration import pair_gold_set


@login_required
def pair_list(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    gold = request.GET.get("gold", "")
    gold = gold if gold in ("yes", "no") else ""
    query = request.GET.get("q", "").strip()[:200]
    page = Paginator(pairs_of(project, gold=gold, query=query), PAIRS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "annotation/pairs.html", {"project": project, "page": page, "gold": gold, "query": query})


@login_required
@require_http_methods(["GET", "POST"])
def pair_detail(request, slug, pair_id):
    project = project_for_user(request.user, slug, role=LEAD)
    pair = pair_for_user(request.user, project, pair_id)
    initial = {"gold": pair.gold, "gold_explanation": pair.gold_explanation}
    form = PairGoldForm(request.POST or None, initial=initial, choices=project.choices)
    if request.method == "POST" and form.is_valid():
        try:
            pair_gold_set(pair=pair, gold=form.cleaned_data["gold"], explanation=form.cleaned_data["gold_explanation"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, "Calibration answer saved." if form.cleaned_data["gold"] else "Not a calibration pair."
            )
            return redirect("annotation:pair_detail", slug=slug, pair_id=pair.pk)
    return render(
        request,
        "annotation/pair_detail.html",
        {
            "project": project,
            "pair": pair,
            "form": form,
            "labels": pair_labels(pair),
            "prompt": [
                {"role": m.get("role", "user"), "html": markdown_to_html(m.get("content", ""))} for m in pair.prompt
            ],  # fmt: skip
            "a_html": markdown_to_html(pair.response_a),
            "b_html": markdown_to_html(pair.response_b),
        },
    )
