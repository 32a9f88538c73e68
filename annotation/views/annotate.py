"""The annotator's page. Pair ids, model names and other people's labels never leave the server: the browser
only sees an assignment's opaque public id and the two responses in the order stored on the assignment."""

from __future__ import annotations

import json
import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from ..access import assignment_for_user, project_for_user
from ..errors import AnnotationError, AnnotatorPaused
from ..feedback import practice_feedback
from ..rendering import markdown_to_html, pygments_css
from ..selectors import annotator_counts, guidelines_current
from ..services.assignment import assignment_next, assignment_skip
from ..services.labels import Submission, label_submit

KEYS = {"left": "1 / ←", "right": "2 / →", "tie": "t", "both_bad": "b"}
STRENGTH_KEYS = "qwer"


def item_context(assignment) -> dict:
    """What the annotator's browser receives for one assignment — and nothing more."""
    if assignment is None:
        return {"item": None}
    pair = assignment.pair
    project = assignment.project
    left, right = (pair.response_a, pair.response_b) if assignment.left_is_a else (pair.response_b, pair.response_a)
    choices = [("left", "Left is better"), ("right", "Right is better")]
    if project.allow_tie:
        choices.append(("tie", "Tie"))
    if project.allow_both_bad:
        choices.append(("both_bad", "Both bad"))
    return {
        "item": {
            "id": str(assignment.public_id),
            "prompt": [
                {"role": m.get("role", "user"), "html": markdown_to_html(m.get("content", ""))} for m in pair.prompt
            ],
            "prompt_is_chat": pair.prompt_is_chat,
            "left_html": markdown_to_html(left),
            "right_html": markdown_to_html(right),
            "choices": [(value, text, KEYS[value]) for value, text in choices],
            "hints": [f"{KEYS[value]} {value.replace('_', ' ')}" for value, _ in choices],
            "strengths": [
                (i + 1, name, STRENGTH_KEYS[i] if i < 4 else "") for i, name in enumerate(project.strength_scale)
            ],
            "criteria": project.criteria,
            "rationale_mode": project.rationale_mode,
            "expires_at": assignment.expires_at.isoformat(),
            # Practice is announced; calibration (gold) items render exactly like regular ones.
            "practice": assignment.kind == assignment.Kind.PRACTICE,
        }
    }


@login_required
@require_GET
def annotate_page(request, slug):
    project = project_for_user(request.user, slug)
    paused = None
    try:
        assignment = assignment_next(project=project, annotator=request.user)
    except AnnotatorPaused as exc:
        assignment, paused = None, exc.message
    guidelines = guidelines_current(project)
    return render(
        request,
        "annotation/annotate.html",
        {
            "project": project,
            "guidelines_html": markdown_to_html(guidelines.body) if guidelines else "",
            "guidelines_version": guidelines.version if guidelines else None,
            "counts": annotator_counts(project, request.user),
            "paused": paused,
            **item_context(assignment),
        },
    )


@login_required
@require_POST
def annotate_next(request, slug):
    """Claim (or re-serve) the next assignment other than those on screen: used to prefetch."""
    project = project_for_user(request.user, slug)
    exclude = [v for v in request.POST.getlist("exclude") if v][:5]
    try:
        assignment = assignment_next(project=project, annotator=request.user, exclude=_valid_uuids(exclude))
    except AnnotatorPaused:
        assignment = None  # the page reloads and says why
    if assignment is None:
        return HttpResponse(status=204)
    return render(request, "annotation/_pair.html", item_context(assignment))


def _valid_uuids(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(uuid.UUID(v)))
        except ValueError:
            continue
    return out


def _error(message: str, code: str, status: int, fields: dict | None = None) -> JsonResponse:
    return JsonResponse({"ok": False, "code": code, "message": message, "fields": fields or {}}, status=status)


def _int_or_none(value):
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError({"strength": "Must be a whole number."}) from None


@login_required
@require_POST
def annotate_submit(request, slug, assignment_id):
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        data = json.loads(request.body or b"{}")
        if not isinstance(data, dict):
            raise ValueError
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return _error("The answer could not be read (expected a JSON object).", "bad_request", 400)
    try:
        submission = Submission(
            choice=str(data.get("choice", "")),
            strength=_int_or_none(data.get("strength")),
            rationale=str(data.get("rationale") or ""),
            criteria=data.get("criteria") if isinstance(data.get("criteria"), dict) else None,
            time_on_item_ms=_int_or_none(data.get("time_on_item_ms")),
        )
        label, created = label_submit(assignment=assignment, submission=submission)
    except ValidationError as exc:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        return _error(" ".join(" ".join(v) for v in fields.values()) or "Invalid answer.", "invalid", 400, fields)
    except AnnotationError as exc:
        return _error(exc.message, exc.code, 409)
    body = {"ok": True, "created": created}
    feedback = practice_feedback(assignment, label)
    if feedback is not None:
        body["feedback_html"] = render_to_string("annotation/_practice_feedback.html", {"feedback": feedback})
    elif request.GET.get("next") == "1":
        # one round trip: the answer carries the pair after the one the page has prefetched ("" when none is left)
        exclude = _valid_uuids(request.GET.getlist("exclude")[:5])
        try:
            following = assignment_next(project=project, annotator=request.user, exclude=exclude)
        except AnnotatorPaused:
            following = None  # the page reloads when it runs out and says why
        body["next_html"] = (render_to_string("annotation/_pair.html", item_context(following), request=request)
                             if following is not None else "")  # fmt: skip
    return JsonResponse(body)


@login_required
@require_POST
def annotate_skip(request, slug, assignment_id):
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        assignment_skip(assignment=assignment)
    except AnnotationError as exc:
        return _error(exc.message, exc.code, 409)
    return JsonResponse({"ok": True})


def pygments_stylesheet(request):
    response = HttpResponse(pygments_css(), content_type="text/css")
    response["Cache-Control"] = "public, max-age=86400"
    return response
