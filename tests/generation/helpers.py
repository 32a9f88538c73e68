"""Prompt sets, generators and runs for the generation tests, made through the app's own services."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from generation.flags import identity_leak
from generation.imports import prompts_import
from generation.models import Candidate, GenerationRun, Prompt, Rating
from generation.plan import plan_clean
from generation.services import generator_create
from judging.services import judge_create


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def prompt_set(project, lead, tmp_path, n: int = 4, name: str = "prompts"):
    records = [{"id": f"q{i}", "prompt": f"In one short sentence: what is {i} plus {i}?", "task": "math"}
               for i in range(n)]  # fmt: skip
    return prompts_import(project=project, path=write_jsonl(tmp_path / f"{name}.jsonl", records), name=name, user=lead)


def endpoint_generator(project, lead, base_url: str, **kw):
    values = {"name": "gen", "base_url": base_url, "model": "m", "requests_per_minute": 60_000, "max_concurrency": 4,
              "price_input_per_m": Decimal("1.0"), "price_output_per_m": Decimal("2.0"), **kw}  # fmt: skip
    return generator_create(project=project, user=lead, **values)


def new_run(project, prompts, generator, lead, plan=None, rater=None):
    """A run as generation_run_start makes it, without queueing (chunks run in this process)."""
    plan = plan_clean(plan or {"temperatures": [0.5, 1.0], "samples": 2, "max_tokens": 32})
    ids = list(Prompt.objects.filter(prompt_set=prompts).order_by("pk").values_list("pk", flat=True))
    slots = len(plan["temperatures"]) * plan["samples"]
    return GenerationRun.objects.create(
        project=project, prompt_set=prompts, generator=generator, rater=rater, plan=plan, prompt_ids=ids,
        requests_planned=len(ids) * slots, ratings_planned=len(ids) * slots if rater else 0, created_by=lead,
        state=GenerationRun.State.RUNNING,
    )  # fmt: skip


def rated_candidates(project, lead, tmp_path, texts_scores, generator=None):
    """A prompt set of one prompt per entry, each with the given (text, score) candidates, rated by one judge."""
    prompts = prompt_set(project, lead, tmp_path, n=len(texts_scores))
    generator = generator or endpoint_generator(
        project, lead, "http://127.0.0.1:9/v1", name="secret-generator-x", model="secret-model-x"
    )
    judge = judge_create(project=project, user=lead, name="r", base_url="http://127.0.0.1:9/v1", model="j")
    run = GenerationRun.objects.create(
        project=project, prompt_set=prompts, generator=generator, plan={}, created_by=lead
    )
    made = []
    for prompt, items in zip(prompts.prompts.order_by("pk"), texts_scores, strict=True):
        for i, (text, score) in enumerate(items):
            c = Candidate.objects.create(
                prompt=prompt, generator=generator, run=run, slot_key=f"s{i}", model="secret-model-x", temperature=0.7,
                sample=i, max_tokens=64, text=text, identity_leak=identity_leak(text), empty=not text.strip(),
            )  # fmt: skip
            if score is not None:
                Rating.objects.create(candidate=c, judge=judge, status="ok", score=score)
            made.append(c)
    return prompts, made
