"""The getting-started page of a project for its leads and admins: the loop from import to evaluation with live
counts, and the next thing to do."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import LEAD, project_for_user

from ..selectors import pipeline_stages


@login_required
@require_GET
def start(request, slug):
    project = project_for_user(request.user, slug, role=LEAD)
    stages = pipeline_stages(project, request.user)
    upcoming = next((s for s in stages if not s.done), None)
    return render(request, "training/start.html", {"project": project, "stages": stages, "upcoming": upcoming})
