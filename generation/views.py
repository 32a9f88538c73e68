"""Generation pages. For a project's leads: prompt sets, generators, runs with live progress, the candidates of a
prompt set with pair building, KTO rows and people's ratings. For every member: rating single candidates, blinded.
Candidate texts are hostile input: rendered like any response."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import LEAD, project_for_user
from annotation.rendering import markdown_to_html
from judging.selectors import judges_for

from .access import (
    candidate_for_rater,
    candidate_for_user,
    generation_run_for_user,
    generator_for_user,
    may_rate,
    prompt_set_for_user,
)
from .forms import GeneratorForm, HumanRatingForm, KtoForm, PairsForm, PromptSetUploadForm, RatingOpenForm, RunStartForm
from .selectors import (
    generators_of,
    human_rating_report,
    next_candidate_for,
    prompt_sets_of,
    prompts_with_candidates,
    rating_left,
    run_progress,
    run_summary,
    runs_of,
)
from .services import (
    GENERATION_RUN_ACTIONS,
    GENERATOR_SETTINGS,
    PromptsRejected,
    QueueUnavailable,
    candidate_gold_set,
    generation_run_start,
    generator_create,
    generator_update,
    human_rating_submit,
    kto_jsonl,
    kto_rows,
    pairs_build,
    pairs_options,
    pairs_preview,
    prompt_set_upload,
    rating_open,
)

PROMPTS_PER_PAGE = 20


def _add_errors(form, exc: ValidationError) -> None:
    """A service's errors on the form: under their field where the form has it, above the form otherwise."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@login_required
@require_http_methods(["GET", "POST"])
def home(request, slug):
    """Prompt sets (upload), generators and runs (start) on one page."""
    project = project_for_user(request.user, slug, role=LEAD)
    upload = PromptSetUploadForm(prefix="prompts")
    start = RunStartForm(prompt_sets=prompt_sets_of(project), generators=generators_of(project),
                         judges=judges_for(project), prefix="run")  # fmt: skip
    if request.method == "POST" and "prompts-name" in request.POST:
        upload = PromptSetUploadForm(request.POST, request.FILES, prefix="prompts")
        if upload.is_valid():
            data = upload.cleaned_data
            try:
                prompt_set = prompt_set_upload(project=project, upload=data["file"], name=data["name"],
                                               user=request.user, file_format=data["file_format"])  # fmt: skip
            except PromptsRejected as exc:
                upload.add_error("file", str(exc))
            except ValidationError as exc:
                upload.add_error(None, exc)
            else:
                messages.success(request, f"{prompt_set.prompts_created} prompts imported into {prompt_set.name} "
                                 f"({prompt_set.duplicates_skipped} repeated ones skipped).")  # fmt: skip
                return redirect("generation:prompt_set", slug=slug, prompt_set_id=prompt_set.public_id)
    elif request.method == "POST":
        start = RunStartForm(request.POST, prompt_sets=prompt_sets_of(project), generators=generators_of(project),
                             judges=judges_for(project), prefix="run")  # fmt: skip
        if start.is_valid():
            data = start.cleaned_data
            try:
                run = generation_run_start(project=project, prompt_set=data["prompt_set"], generator=data["generator"],
                                           plan=start.plan(), rater=data["rater"], limit=data["limit"],
                                           user=request.user)  # fmt: skip
            except ValidationError as exc:
                _add_errors(start, exc)
            except QueueUnavailable as exc:
                start.add_error(None, str(exc))
            else:
                return redirect("generation:run_detail", slug=slug, generation_run_id=run.public_id)
    return render(request, "generation/home.html", {
        "project": project, "prompt_sets": prompt_sets_of(project), "generators": generators_of(project),
        "runs": runs_of(project), "upload": upload, "start": start,
    })  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def generator_edit(request, slug, generator_id=None):
    project = project_for_user(request.user, slug, role=LEAD)
    generator = generator_for_user(request.user, project, generator_id) if generator_id else None
    form = GeneratorForm(request.POST or None, instance=generator)
    if request.method == "POST" and form.is_valid():
        values = {k: form.cleaned_data[k] for k in GENERATOR_SETTINGS}
        try:
            if generator is None:
                generator = generator_create(project=project, user=request.user, **values)
            else:
                generator = generator_update(generator=generator, **values)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Generator {generator.name} saved.")
            return redirect("generation:home", slug=slug)
    return render(request, "generation/generator_edit.html", {"project": project, "generator": generator,
                                                               "form": form})  # fmt: skip


@login_required
def run_detail(request, slug, generation_run_id):
    project = project_for_user(request.user, slug, role=LEAD)
    run = generation_run_for_user(request.user, project, generation_run_id)
    context = {"project": project, "run": run, "progress": run_progress(run)}
    if request.headers.get("HX-Request"):
        return render(request, "generation/_run_status.html", context)
    context["summary"] = run_summary(run)
    return render(request, "generation/run_detail.html", context)


@login_required
@require_POST
def run_action(request, slug, generation_run_id, action):
    project = project_for_user(request.user, slug, role=LEAD)
    run = generation_run_for_user(request.user, project, generation_run_id)
    service = GENERATION_RUN_ACTIONS.get(action)
    if service is None:
        raise Http404("No such action.")
    try:
        service(run=run)
    except QueueUnavailable as exc:
        messages.error(request, str(exc))
    return redirect("generation:run_detail", slug=slug, generation_run_id=run.public_id)


def _page(request) -> int:
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


@login_required
@require_http_methods(["GET", "POST"])
def prompt_set(request, slug, prompt_set_id):
    """The prompts with their candidates (flags, scores), pair building with a preview, KTO rows."""
    project = project_for_user(request.user, slug, role=LEAD)
    prompts = prompt_set_for_user(request.user, project, prompt_set_id)
    asked = request.method == "POST" or "strategy" in request.GET
    pairs_form = PairsForm((request.POST if request.method == "POST" else request.GET) if asked else None)
    preview = None
    if pairs_form.is_bound and pairs_form.is_valid():
        try:
            options = pairs_options(pairs_form.cleaned_data)
            if request.method == "POST":
                result = pairs_build(prompt_set=prompts, options=options, user=request.user)
                messages.success(request, f"{result.created} pairs added to the project's pool "
                                 f"({result.already_in_project} it had already).")  # fmt: skip
                return redirect("generation:prompt_set", slug=slug, prompt_set_id=prompts.public_id)
            preview = pairs_preview(prompt_set=prompts, options=options)
        except ValidationError as exc:
            pairs_form.add_error(None, exc)
    page = _page(request)
    rows = prompts_with_candidates(prompts, limit=PROMPTS_PER_PAGE, offset=(page - 1) * PROMPTS_PER_PAGE)
    for row in rows:
        row["prompt_html"] = [
            {"role": m["role"], "html": markdown_to_html(m["content"])} for m in row["prompt"].messages
        ]
        for candidate in row["candidates"]:
            candidate.html = markdown_to_html(candidate.text)
    return render(request, "generation/prompt_set.html", {
        "project": project, "prompt_set": prompts, "rows": rows, "pairs_form": pairs_form, "preview": preview,
        "kto_form": KtoForm(prefix="kto"), "page": page, "has_next": page * PROMPTS_PER_PAGE < prompts.prompts_created,
        "rating_form": RatingOpenForm(prefix="rating", initial={"k": prompts.rating_k or 3,
                                               "hide_identity_leaks": prompts.hide_identity_leaks}),
        "human_report": human_rating_report(prompts, n_boot=200) if prompts.rating_k else None,
    })  # fmt: skip


@login_required
def kto_download(request, slug, prompt_set_id):
    project = project_for_user(request.user, slug, role=LEAD)
    prompts = prompt_set_for_user(request.user, project, prompt_set_id)
    defaults = {
        f"kto-{name}": field.initial for name, field in KtoForm.base_fields.items() if field.initial is not None
    }
    form = KtoForm({**defaults, **request.GET.dict()}, prefix="kto")
    if not form.is_valid():
        return HttpResponse("; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()), status=400,
                            content_type="text/plain")  # fmt: skip
    try:
        result = kto_rows(prompt_set=prompts, **form.cleaned_data)
    except ValidationError as exc:
        return HttpResponse("; ".join(exc.messages), status=400, content_type="text/plain")
    response = HttpResponse(kto_jsonl(result), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{prompts.name}-kto.jsonl"'
    # KTOTrainer's class weights for these counts (KTOConfig desirable_weight / undesirable_weight)
    response["X-KTO-Desirable-Weight"] = str(result.desirable_weight)
    response["X-KTO-Undesirable-Weight"] = str(result.undesirable_weight)
    return response


@login_required
def rate(request, slug):
    """One candidate at a time, blinded (the prompt and the response, nothing about who wrote it)."""
    project = project_for_user(request.user, slug)
    allowed = may_rate(request.user, project)
    candidate = next_candidate_for(project, request.user) if allowed else None
    context = {"project": project, "candidate": candidate, "paused": not allowed,
               "left": rating_left(project, request.user) if allowed else 0}  # fmt: skip
    if candidate is not None:
        context["prompt_html"] = [{"role": m["role"], "html": markdown_to_html(m["content"])}
                                  for m in candidate.prompt.messages]  # fmt: skip
        context["response_html"] = markdown_to_html(candidate.text)
    return render(request, "generation/rate.html", context)


@login_required
@require_POST
def rate_submit(request, slug, candidate_id):
    project = project_for_user(request.user, slug)
    candidate = candidate_for_rater(request.user, project, candidate_id)
    form = HumanRatingForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("generation:rate", slug=slug)
    data = form.cleaned_data
    try:
        human_rating_submit(candidate=candidate, user=request.user, up=data["up"], stars=data["stars"],
                            time_ms=data["time_ms"])  # fmt: skip
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("generation:rate", slug=slug)


@login_required
@require_POST
def rating_open_view(request, slug, prompt_set_id):
    project = project_for_user(request.user, slug, role=LEAD)
    prompts = prompt_set_for_user(request.user, project, prompt_set_id)
    form = RatingOpenForm(request.POST, prefix="rating")
    if form.is_valid():
        rating_open(prompt_set=prompts, **form.cleaned_data)
        k = form.cleaned_data["k"]
        messages.success(request, f"Open for rating, {k} people a candidate." if k else "Closed for rating.")
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("generation:prompt_set", slug=slug, prompt_set_id=prompts.public_id)


@login_required
@require_POST
def candidate_gold(request, slug, candidate_id):
    project = project_for_user(request.user, slug, role=LEAD)
    candidate = candidate_for_user(request.user, project, candidate_id)
    try:
        candidate_gold_set(candidate=candidate, gold=request.POST.get("gold", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("generation:prompt_set", slug=slug, prompt_set_id=candidate.prompt.prompt_set.public_id)
