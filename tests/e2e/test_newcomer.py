"""The newcomer's first hour, in a real browser: the demo `make run` sets up, a real worker for every queue and the
real local model server (llama.cpp with SmolLM2). An annotator labels 10 pairs from the keyboard; the lead sees a κ
heatmap of several annotators and a paused one, makes an API token and reads the same project with the Python
client, runs the local judge on a few pairs and reads its report, adds a
reward model, scores pairs with it and reads its audit beside the length baseline, and exports; imports prompts,
samples candidates from the local model at two temperatures and builds pairs from them; another annotator rates
candidates by thumbs from the keyboard; the admin launches the smoke job from the export, sees it succeed with an
evaluation, then its automatic win rate against the base model judged by the local judge, and sends the A/B pairs
to people; it sees the run's health alarms and charts, sweeps β over two smoke runs from the export, compares them
with their curves and the β–KL plot, and promotes the best; it launches a one-round iterative DPO campaign and
watches it move stage by stage to its report; an annotator labels one A/B pair, blinded."""

import pyarrow.parquet as pq
import pytest
from arbiter_client import Arbiter
from django.core.management import call_command

from annotation.models import Label, Pair
from generation.models import HumanRating, PairOrigin
from judging.models import JudgeRun
from tests.training.conftest import smollm2_gguf
from tests.worker import celery_worker, wait_for
from training.models import Campaign, DatasetExport, Evaluation, Sweep, TrainingJob
from training.sweeps.compare import sweep_comparison

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PASSWORD = "arbiter-demo"  # the demo's, printed by `make run`


def logged_in(browser, live_server, username, path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/accounts/login/?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{path}")
    return page


def label_from_the_keyboard(page, n):
    """Answer n items; a practice item's feedback is dismissed with Enter, as the page says."""
    page.wait_for_selector("#annotate[data-ready]", state="attached")
    for i in range(n):
        page.wait_for_selector("#item-slot form.item")
        shown = page.get_attribute("#item-slot form.item", "data-assignment")
        page.keyboard.press("1" if i % 3 else "2")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "id => document.querySelector('#practice-feedback') || !document.querySelector('#item-slot form.item')"
            " || document.querySelector('#item-slot form.item').dataset.assignment !== id", arg=shown)  # fmt: skip
        if page.query_selector("#practice-feedback"):
            page.keyboard.press("Enter")  # continue
            page.wait_for_selector("#item-slot form.item")


def test_a_newcomer_walks_the_loop_as_annotator_lead_and_admin(live_server, browser, llama_server, settings,
                                                              tmp_path):  # fmt: skip
    smollm2_gguf()
    settings.LOCAL_MODEL_URL = llama_server.base_url  # what `make run` serves, here the test session's server
    settings.EXPORT_ROOT, settings.TRAINING_ROOT = tmp_path / "exports", tmp_path / "training"
    call_command("demo_setup")
    env = {"EXPORT_ROOT": str(settings.EXPORT_ROOT), "TRAINING_ROOT": str(settings.TRAINING_ROOT),
           "MODEL_CACHE": str(settings.MODEL_CACHE)}  # fmt: skip
    with celery_worker(queues="default,judge,gpu", extra_env=env):
        annotator = logged_in(browser, live_server, "demo-annotator-1", "/p/demo/annotate/")
        label_from_the_keyboard(annotator, 10)
        annotator.wait_for_function("document.getElementById('progress-counter').textContent.startsWith('10 ')")
        assert Label.objects.filter(annotator__username="demo-annotator-1").count() == 10
        annotator.context.close()

        lead = logged_in(browser, live_server, "demo-lead", "/p/demo/start/")
        assert lead.inner_text("#pipeline [data-stage=annotate] b").endswith("labels")
        lead.goto(f"{live_server.url}/p/demo/quality/")
        lead.wait_for_selector("#kappa-heatmap[data-ready='1']", state="attached")
        assert lead.evaluate("Chart.getChart(document.getElementById('kappa-heatmap')).data.datasets[0].data"
                             ".filter(c => c.x === c.y).length") >= 3  # fmt: skip
        assert "paused" in lead.inner_text("#annotator-table")
        assert "implausibly fast" in lead.inner_text("#annotator-table")

        # The same project from a notebook: the lead makes an API token on its page and the Python client reads what
        # the pages show (its whole loop against a live server: tests/client/test_client.py).
        lead.click("header a.who")
        lead.click("main form button.primary")
        token = lead.input_value("#api-token")
        with Arbiter(live_server.url, token) as api:
            project = api.project("demo")
            assert project.progress()["pairs"] == Pair.objects.filter(project__slug="demo").count()
            calibration = list(project.pairs(calibration=True))
            assert len(calibration) == Pair.objects.filter(project__slug="demo").exclude(gold="").count()
            dump = project.download_labels(tmp_path / "labels.parquet")
            assert pq.read_metadata(dump).num_rows == Label.objects.filter(project__slug="demo").count()

        lead.goto(f"{live_server.url}/p/demo/judges/")
        lead.select_option("#id_run-judge", label="local SmolLM2-135M")
        lead.fill("#id_run-limit", "3")
        lead.click("#run-start button.primary")
        lead.wait_for_selector("#run-status.run-succeeded", timeout=240_000)
        lead.reload()
        assert "picked the response shown first" in lead.inner_text("#judge-report")
        assert JudgeRun.objects.get(judge__name="local SmolLM2-135M").verdicts.count() == 6  # 3 pairs, both orders

        # A reward model as a scorer: the lead adds SmolLM2 with a classification head, scores pairs with it on the
        # gpu worker (order-free: one verdict a pair) and reads its audit beside the length and position baselines.
        lead.goto(f"{live_server.url}/p/demo/judges/")
        lead.click("#new-reward-model")
        lead.fill("#id_name", "my reward model")
        lead.fill("#id_model", str(smollm2_gguf()))
        lead.click("#reward-model-form button.primary")
        lead.wait_for_selector("tr.reward-model[data-judge='my reward model']")
        lead.select_option("#id_run-judge", label="my reward model")
        lead.fill("#id_run-limit", "40")
        lead.click("#run-start button.primary")
        lead.wait_for_selector("#run-status.run-succeeded", timeout=240_000)
        assert JudgeRun.objects.get(judge__name="my reward model").verdicts.count() == 40
        lead.goto(f"{live_server.url}/p/demo/judges/")
        lead.click("tr[data-judge='my reward model'] a.audit-link")
        lead.wait_for_selector("#audit-summary tr[data-row='longer']")
        assert int(lead.inner_text("#audit-summary tr[data-row='scorer'] td:last-child")) > 0
        assert "Cohen" in lead.inner_text("#audit-kappa")

        # candidates from the local model at two temperatures, then every two of a prompt as a pair for people and
        # judges to label (the seeds' "all pairwise comparisons"; rated runs are tests/generation/test_worker_runs.py)
        lead.goto(f"{live_server.url}/p/demo/generation/")
        prompts_file = tmp_path / "my-prompts.jsonl"
        prompts_file.write_text('{"prompt": "Name a fruit that is yellow."}\n{"prompt": "What is 3 + 4?"}\n')
        lead.fill("#id_prompts-name", "my prompts")
        lead.set_input_files("#id_prompts-file", str(prompts_file))
        lead.click("#prompt-upload button")
        lead.wait_for_selector("text=2 prompts imported into my prompts")
        lead.goto(f"{live_server.url}/p/demo/generation/")
        lead.select_option("#id_run-prompt_set", label="my prompts")
        lead.select_option("#id_run-generator", label="local SmolLM2-135M")
        lead.fill("#id_run-temperatures", "0.7, 1.0")
        lead.fill("#id_run-max_tokens", "24")
        lead.click("#generation-start button.primary")
        lead.wait_for_selector("#run-status.run-succeeded", timeout=240_000)
        assert "4 of 4 candidates" in lead.inner_text("#run-status")
        lead.click("text=Review candidates and build pairs")
        assert lead.locator("article.candidate").count() == 4
        lead.select_option("#id_strategy", "all")
        lead.check("#id_include_flagged")  # 24 tokens cut most answers short: flagged, and wanted here
        lead.click("#pairs-form button:text('Preview')")
        previewed = int(lead.inner_text("#pairs-preview div:first-child b"))
        assert previewed == 2  # one a prompt (two candidates each), unless the model wrote the same text twice
        lead.click("#pairs-form button.primary")
        lead.wait_for_selector("text=pairs added to the project's pool")
        assert PairOrigin.objects.count() == previewed
        lead.fill("#id_rating-k", "2")  # open the candidates to people: two ratings each
        lead.click("#rating-open button")
        lead.wait_for_selector("text=Open for rating, 2 people a candidate.")
        lead.context.close()

        rater = logged_in(browser, live_server, "demo-annotator-2", "/p/demo/rate/")
        for key in ("ArrowUp", "ArrowDown"):  # thumbs from the keyboard, blinded: no model name on the page
            rater.wait_for_selector("#rate-form[data-ready]", state="attached")
            assert "smollm2" not in rater.content().lower()
            before = HumanRating.objects.count()
            rater.keyboard.press("4")
            with rater.expect_navigation():
                rater.keyboard.press(key)
            assert HumanRating.objects.count() == before + 1
        assert HumanRating.objects.filter(stars=4).count() == 2
        rater.context.close()

        lead = logged_in(browser, live_server, "demo-lead", "/p/demo/curation/")
        lead.locator("form.inline-form", has_text="Export demo v").locator("button.primary").click()  # DPO
        lead.wait_for_selector("#export-status.export-succeeded")
        export = DatasetExport.objects.filter(created_by__username="demo-lead").latest("created_at")
        lead.context.close()

        admin = logged_in(browser, live_server, "demo-admin", f"/p/demo/exports/{export.public_id}/")
        admin.click("#smoke-link")
        admin.wait_for_selector("#launch-form")
        assert admin.input_value("#id_base_model") == str(settings.LOCAL_MODEL_PATH)
        assert admin.input_value("#id_preset") == "smoke"
        admin.click("#launch-form button.primary")
        admin.wait_for_function("['succeeded', 'failed', 'cancelled'].includes(document.getElementById('job-state')"
                                ".textContent)", timeout=420_000)  # fmt: skip
        job = TrainingJob.objects.get(sweep=None)
        assert job.state == "succeeded", (job.error, job.log_tail)
        admin.wait_for_selector("#evaluation")  # the page reloads itself when the job ends
        assert "Held-out evaluation" in admin.inner_text("#evaluation")
        assert admin.query_selector("#artifacts a:text('adapter.zip')")
        # the worker's memory plan for the job (issue 20): a LoRA adapter on the converted GGUF, checked there
        assert "Memory plan (on the worker): LoRA adapter, base not quantized: ≈" in admin.inner_text("#memory-plan")
        # The job evaluates itself against its base model: both answer the held-out prompts, the demo's judge
        # compares them in both orders; its page follows the runs and shows the win rate and every prompt.
        assert wait_for(lambda: Evaluation.objects.filter(job=job).exists(), timeout=60)
        evaluation = Evaluation.objects.get(job=job)
        admin.goto(f"{live_server.url}/training/evaluations/{evaluation.public_id}/")
        admin.wait_for_selector("#win-rate-panel", timeout=420_000)
        evaluation.refresh_from_db()
        assert evaluation.state == "succeeded" and evaluation.automatic, evaluation.error
        assert "Win rate against" in admin.inner_text("#win-rate") and admin.inner_text("#judge-audit")
        assert len(admin.query_selector_all("#per-prompt-table tbody tr")) == evaluation.report["prompts"] >= 1
        assert evaluation.pair_ids, "the tuned model answered every prompt as its base did"
        admin.click("#send-form button")
        admin.wait_for_selector("#send-form button[disabled]")
        admin.goto(f"{live_server.url}/training/jobs/{job.public_id}/")
        assert admin.query_selector("#evaluations #win-rate") and "Win rate against" in admin.inner_text("#model-card")
        # Health alarms watched every step: the drift estimate and the held-out answer length are charted.
        assert "Health alarms" in admin.inner_text("#alarms")
        admin.wait_for_selector("figure[data-series='kl_estimate']:not([hidden])")
        admin.wait_for_selector("figure[data-series='answer_tokens']:not([hidden])")

        # A β sweep from the export: two smoke runs one after the other, compared side by side, the best promoted.
        admin.goto(f"{live_server.url}/p/demo/exports/{export.public_id}/")
        admin.click("#sweep-link")
        admin.wait_for_selector("#sweep-form")
        assert "beta: 0.05, 0.1, 0.2, 0.5" in admin.input_value("#id_axes")  # seed 003's grid is offered
        admin.select_option("#id_preset", "smoke")
        admin.fill("#id_axes", "beta: 0.1, 0.5")
        admin.fill("#id_settings", "eval_prompts: 0\nlength_checks: 0")  # the job above showed both
        admin.click("#sweep-form button.primary")
        admin.wait_for_selector("#run-table")
        sweep = Sweep.objects.get()
        assert wait_for(lambda: Sweep.objects.get(pk=sweep.pk).state != "running", timeout=600), [
            (j.state, j.error) for j in sweep.jobs.all()]  # fmt: skip
        admin.locator("#sweep-state.state-finished").wait_for(timeout=30_000)  # the page reloads itself
        assert admin.inner_text("#sweep-state") == "Finished"
        assert len(admin.query_selector_all("#run-table tbody tr")) == 2 and "Best by" in admin.inner_text("#best-run")
        admin.wait_for_function("Chart.getChart(document.querySelector('#beta-kl canvas'))"
                                ".data.datasets[0].data.length === 2")  # fmt: skip
        admin.wait_for_function("Chart.getChart(document.querySelector(\"figure[data-series='loss'] canvas\"))"
                                ".data.datasets.length === 2")  # fmt: skip
        admin.click("#run-table tbody tr:first-child .promote-form button")
        admin.wait_for_selector("#promoted")
        assert Sweep.objects.get().promoted_job.sweep_point == sweep_comparison(sweep)["best"]["point"]

        # An iterative DPO campaign of one round on the demo prompts: the local model samples 4 answers to each of 4
        # prompts, the demo's sampled rater scores them, best-vs-worst pairs are curated by score, a smoke job
        # trains, the tuned model is judged against the base on 2 held-out prompts. The page follows each stage.
        admin.goto(f"{live_server.url}/training/")
        admin.click("#campaigns-link")
        assert admin.input_value("#id_base_model") == str(settings.LOCAL_MODEL_PATH)
        admin.fill("#id_name", "first loop")
        admin.select_option("#id_prompt_set", label="Demo: helpful answers · demo prompts (12)")
        for field, value in (("per_round", "4"), ("eval_prompts", "2"), ("rounds", "1"), ("samples", "4"),
                             ("max_tokens", "24"), ("settings", "max_length: 96")):  # fmt: skip
            admin.fill(f"#id_{field}", value)
        admin.select_option("#id_judge", label="Demo: helpful answers · local SmolLM2-135M, sampled (T=2)")
        admin.select_option("#id_recipe", label="Demo: helpful answers · campaign: by scores v1")
        admin.check("#id_include_flagged")  # 24 tokens cut most answers short
        admin.select_option("#id_preset", "smoke")
        admin.click("#campaign-form button.primary")
        admin.wait_for_selector("#round-table tr[data-round='1']")
        campaign = Campaign.objects.get()
        seen = []
        for stage in ("generate", "pair", "rate", "curate", "train", "evaluate"):  # the page reloads as each ends
            admin.wait_for_selector(f"tr[data-round='1'] .stage[data-stage='{stage}'][data-status='done'], "
                                    "#campaign-error", timeout=420_000)  # fmt: skip
            assert not admin.query_selector("#campaign-error"), Campaign.objects.get().error
            seen.append(stage)
        admin.wait_for_selector("#campaign-state.state-finished", timeout=60_000)
        assert "finished after 1 rounds" in admin.inner_text("#campaign-stage")
        row = admin.inner_text("#report-table tbody tr[data-round='1']")
        assert "%" in row and " → " in row  # win rate vs base, with its interval; the funnel
        admin.wait_for_function("Chart.getChart(document.querySelector('#campaign-chart canvas'))"
                                ".data.labels.length === 1")  # fmt: skip
        first = campaign.round_set.get()
        assert first.job.state == "succeeded" and first.eval_base.state == "succeeded"
        admin.context.close()

        # An annotator gets the A/B pairs blinded: no model, no generator, no side that says which is tuned.
        ab = evaluation.ab_project
        voter = logged_in(browser, live_server, "demo-annotator-2", f"/p/{ab.slug}/annotate/")
        voter.wait_for_selector("#item-slot form.item")
        shown = voter.inner_text("main")
        for secret in (evaluation.tuned_generator.name, evaluation.baseline_generator.name, "tuned", "baseline",
                       "SmolLM2"):  # fmt: skip
            assert secret not in shown
        voter.keyboard.press("1")
        voter.keyboard.press("Enter")
        assert wait_for(lambda: Label.objects.filter(project=ab, annotator__username="demo-annotator-2").exists())
        voter.context.close()
