"""A real browser (Debian chromium via Playwright) against the live server."""

import pytest

from annotation.models import Assignment, Label, Membership, Pair
from annotation.services.projects import project_update
from tests.factories import PASSWORD, ProjectFactory, UserFactory, make_pairs, member

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

N_ITEMS = 20


def log_in(page, live_server, user, next_path):
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{next_path}")
    if next_path.endswith("/annotate/"):
        page.wait_for_selector("#annotate[data-ready]", state="attached")


def shown_id(page):
    return page.get_attribute("#item-slot form.item", "data-assignment")


def test_annotator_labels_from_the_keyboard_blinded(live_server, page):
    project = ProjectFactory(slug="kb", overlap_k=1)
    project_update(project=project, strength_scale=["slightly", "clearly", "much"])
    user = UserFactory()
    member(project, user)
    pairs = make_pairs(project, N_ITEMS + 2, model_a="model-name-alpha", model_b="model-name-beta")
    texts_a = {p.response_a for p in pairs}

    log_in(page, live_server, user, "/p/kb/annotate/")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    a_on_left = []
    keys = ["1", "ArrowRight", "2", "t", "ArrowLeft", "b"]
    for i in range(N_ITEMS):
        page.wait_for_selector("#item-slot form.item")
        current = shown_id(page)
        html = page.content()
        assert "model-name-" not in html
        left_text = page.inner_text("#item-slot [data-side=left] .md").strip()
        a_on_left.append(left_text in texts_a)
        page.keyboard.press(keys[i % len(keys)])
        if i == 0:
            page.keyboard.press("w")  # strength: clearly
            page.keyboard.press("c")  # focus the rationale
            page.keyboard.type("Left is more specific.")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "id => { const f = document.querySelector('#item-slot form.item');"
            " return !f || f.dataset.assignment !== id }",
            arg=current,
        )
    page.wait_for_function(f"document.getElementById('progress-counter').textContent.startsWith('{N_ITEMS} ')")
    # one request per label once a pair is prefetched: the answer brings the pair after it (issue 20)
    assert sum("/next/" in url for url in posts) <= 2, posts
    assert sum("?next=1" in url for url in posts) >= N_ITEMS - 2

    labels = Label.objects.filter(annotator=user).select_related("assignment").order_by("created_at")
    assert labels.count() == N_ITEMS
    assert {lab.choice for lab in labels} >= {"A", "B", "tie", "both_bad"}
    first = labels[0]
    assert first.strength == 2 and first.rationale == "Left is more specific."
    assert first.choice == ("A" if first.assignment.left_is_a else "B")
    assert all(lab.time_on_item_ms is not None for lab in labels)
    # What the browser showed matches the side stored for each assignment, and both sides occur for response A.
    stored = [lab.assignment.left_is_a for lab in labels]
    assert a_on_left == stored
    assert set(stored) == {True, False}
    # The prefetched next pair never leaked model names either.
    assert "model-name-" not in page.content()


def test_skip_and_nothing_left(live_server, page):
    project = ProjectFactory(slug="small", overlap_k=1)
    user = UserFactory()
    member(project, user)
    make_pairs(project, 2)
    log_in(page, live_server, user, "/p/small/annotate/")
    page.wait_for_selector("#item-slot form.item")
    first = shown_id(page)
    page.keyboard.press("s")
    page.wait_for_function("id => document.querySelector('#item-slot form.item')?.dataset.assignment !== id", arg=first)
    page.keyboard.press("Enter")  # no choice yet: a message, nothing sent
    page.wait_for_selector("#flash:not([hidden])")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#nothing-left")
    assert Assignment.objects.get(public_id=first).state == Assignment.State.SKIPPED
    assert Label.objects.filter(annotator=user).count() == 1


def test_lead_uploads_a_file_with_one_bad_line_and_sees_the_line_number(live_server, page):
    project = ProjectFactory(slug="imp")
    lead = UserFactory()
    member(project, lead, Membership.Role.LEAD)
    content = (
        b'{"prompt": "p1", "response_a": "a", "response_b": "b"}\n'
        b'{"prompt": "p2", "response_a": "a", "response_b": "b"}\n'
        b'{"prompt": "p3", "response_a": "a", "response_b": 42}\n'
        b'{"prompt": "p4", "response_a": "a", "response_b": "b"}\n'
    )
    log_in(page, live_server, lead, "/p/imp/imports/")
    page.set_input_files(
        "input[name=file]", files=[{"name": "pairs.jsonl", "mimeType": "application/jsonl", "buffer": content}]
    )
    page.click("button[type=submit].primary")
    page.wait_for_selector("#import-status.import-failed")
    row = page.inner_text("#import-status table.errors tbody tr")
    assert "3" in row.split("\t")[0] and "response_b" in row
    assert "pairs.jsonl, line 3" in page.inner_text("#import-status")
    assert not Pair.objects.filter(project=project).exists()


def test_lead_sees_the_quality_dashboard(live_server, page):
    from annotation.models import Label

    project = ProjectFactory(slug="qual")
    lead = UserFactory(username="quality-lead")
    member(project, lead, Membership.Role.LEAD)
    pairs = make_pairs(project, 6)
    for pair, (x, y, z) in zip(pairs, ["AAB", "BBB", "AAA", "ABA", "BBA", "AAA"], strict=True):
        for name, choice in (("x", x), ("y", y), ("z", z)):
            Label.objects.create(project=project, pair=pair, source="external", external_annotator=name, choice=choice)
    # one annotator with calibration answers, for the drift chart
    from annotation.models import Assignment

    gold_pair = make_pairs(project, 1)[0]
    type(gold_pair).objects.filter(pk=gold_pair.pk).update(gold="A", open_slots=0)
    from django.utils import timezone

    now = timezone.now()
    ann = UserFactory(username="calibrated")
    member(project, ann)
    a = Assignment.objects.create(project=project, pair=gold_pair, annotator=ann, kind="gold", state="done",
                                  left_is_a=True, served_at=now, expires_at=now)  # fmt: skip
    Label.objects.create(project=project, pair=gold_pair, assignment=a, annotator=ann, choice="A", left_is_a=True)
    log_in(page, live_server, lead, "/p/qual/quality/")
    page.wait_for_selector("#gold-drift[data-ready='1']", state="attached")
    page.wait_for_selector("#kappa-heatmap[data-ready='1']", state="attached")
    page.wait_for_selector("#left-pick[data-ready='1']", state="attached")
    page.wait_for_selector("#annotator-table canvas.sparkline[data-annotator='calibrated'][data-ready='1']",
                           state="attached")  # fmt: skip
    assert "Calibration pairs" in page.inner_text("main") and "1 answers" in page.inner_text("#gold-figures")
    rows = page.locator("#annotator-table tbody tr")
    assert rows.count() == 4
    assert "imported:x" in page.inner_text("#annotator-table")
    assert "Fleiss" in page.inner_text("#project-figures")
    # the heatmap really drew something: the canvas is not blank
    blank = page.evaluate(
        "() => { const c = document.getElementById('kappa-heatmap');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return d.every(v => v === 0); }"
    )
    assert blank is False


def test_practice_item_shows_feedback_then_continues_from_the_keyboard(live_server, page):
    from annotation.services.calibration import pair_gold_set

    project = ProjectFactory(slug="practice", overlap_k=1)
    gold, *_ = make_pairs(project, 3)
    pair_gold_set(pair=gold, gold="A", explanation="Guideline 1: **correctness first**.")
    project_update(project=project, practice_items=1, calibration_rate=0.0)
    user = UserFactory()
    member(project, user)
    log_in(page, live_server, user, "/p/practice/annotate/")
    page.wait_for_selector("#item-slot .practice-banner")
    practice = Assignment.objects.get(annotator=user, kind="practice")
    page.keyboard.press("2" if practice.left_is_a else "1")  # the side B is on: the wrong answer
    page.keyboard.press("Enter")
    page.wait_for_selector("#practice-feedback")
    feedback = page.inner_text("#practice-feedback")
    assert "Not quite" in feedback and "correctness first" in feedback
    assert ("left" if practice.left_is_a else "right") in feedback
    page.keyboard.press("Enter")  # continue
    page.wait_for_selector("#item-slot form.item")
    assert page.query_selector("#item-slot .practice-banner") is None
    assert shown_id(page) != str(practice.public_id)
    assert Label.objects.get(assignment=practice).choice == "B"


def test_lead_previews_a_recipe_saves_it_and_exports(live_server, page, settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    project = ProjectFactory(slug="cur")
    lead = UserFactory(username="curation-lead")
    member(project, lead, Membership.Role.LEAD)
    for pair in make_pairs(project, 5):
        Label.objects.create(project=project, pair=pair, source="external", external_annotator="x", choice="A")
    log_in(page, live_server, lead, "/p/cur/curation/")
    page.fill("#id_name", "strict")
    page.click("button[value=preview]")
    page.wait_for_selector("#funnel")
    assert "Preview: 5 rows" in page.inner_text("#preview")
    page.click("button[value=save]")
    page.wait_for_selector("text=Recipe strict saved as version 1")
    page.select_option("select[name=format]", "kto")
    page.click("form.inline-form button.primary")
    page.wait_for_selector("#export-status.export-succeeded")
    assert "train.jsonl" in page.inner_text("#export-status") and "Funnel" in page.inner_text("#datasheet")
    with page.expect_download() as download:
        page.click("#export-status a:text('train.jsonl')")
    assert download.value.suggested_filename.endswith("-kto-train.jsonl")


def test_admin_launches_a_training_job_and_watches_it_live(live_server, page, settings, tmp_path):
    """From the export page to a queued job; then, as a worker reports steps, the charts grow without a reload;
    cancel from the page."""
    from tests.training.conftest import labelled_export
    from training.jobs.lifecycle import job_claim, job_metrics_record, job_progress_update
    from training.models import TrainingJob

    settings.EXPORT_ROOT, settings.TRAINING_ROOT = tmp_path / "exports", tmp_path / "training"
    project = ProjectFactory(slug="tr")
    lead = UserFactory(username="tr-lead")
    member(project, lead, Membership.Role.LEAD)
    admin = UserFactory(username="tr-admin", is_staff=True)
    export = labelled_export(project, lead, "dpo")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    log_in(page, live_server, admin, f"/p/tr/exports/{export.public_id}/")
    page.click("#train-link")
    page.wait_for_selector("#launch-form")
    page.select_option("#id_preset", "smoke")
    page.fill("#id_base_model", str(model))
    page.fill("#id_name", "first run")
    page.click("#launch-form button.primary")
    page.wait_for_selector("#job-status")
    job = TrainingJob.objects.get()
    assert job.export == export and job.spec["max_steps"] == 2 and page.inner_text("#job-state") == "queued"
    job_claim(job.pk, "browser-test")
    for step, margin in ((1, 0.01), (2, 0.05), (3, 0.12)):
        values = {"loss": 0.69 - step / 100, "rewards/margins": margin, "rewards/accuracies": 0.5}
        job_metrics_record(job.pk, step, values)
        job_progress_update(job.pk, step, 10, "training")
    page.wait_for_function(
        "() => { const c = document.querySelector('figure[data-series=\"rewards/margins\"] canvas');"
        " const chart = c && Chart.getChart(c); return chart && chart.data.datasets[0].data.length === 3; }"
    )
    assert page.inner_text("#job-step") == "3" and page.inner_text("#job-state") == "running"
    assert page.is_hidden("figure[data-series='kl']")  # only series the run logs are drawn
    page.click("#cancel-form button")
    page.wait_for_selector("text=The job stops at its next step.")
    assert TrainingJob.objects.get(pk=job.pk).cancel_requested_at is not None


def test_hostile_text_never_runs_script_in_the_browser(live_server, page, tmp_path):
    """Prompts and responses with script, event handlers, javascript: links and SVG: no dialog ever opens while an
    annotator works through them and a lead reads them."""
    from annotation.imports.importer import pairs_import
    from tests.security.test_bad_input import HOSTILE

    project = ProjectFactory(slug="xss", overlap_k=1)
    user = UserFactory(username="xss-annotator")
    member(project, user, Membership.Role.ANNOTATOR)
    path = tmp_path / "hostile.jsonl"
    import orjson

    path.write_bytes(b"".join(orjson.dumps({"prompt": t, "response_a": t, "response_b": f"B {t}"}) + b"\n"
                              for t in HOSTILE))  # fmt: skip
    pairs_import(project=project, path=path)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live_server, user, "/p/xss/annotate/")
    for _ in HOSTILE:
        page.wait_for_selector("#item-slot form.item")
        shown = shown_id(page)
        assert page.locator("#item-slot :is(script, img, svg, iframe, a[href^='javascript'])").count() == 0
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(prev) => { const f = document.querySelector('#item-slot form.item');"
            " return !f || f.dataset.assignment !== prev; }", arg=shown)  # fmt: skip
    assert Label.objects.filter(project=project).count() == len(HOSTILE)
    assert dialogs == []
