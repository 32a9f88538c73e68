"""The demo's generation: a prompt set written by the project, the local model as a generator, and (when the
local model is ready) a first small run rated by the demo judge, opened for the demo annotators to rate by thumbs.
A 135M model writes short, often wrong answers: the candidates, their flags and scores show the loop honestly."""

from __future__ import annotations

import json

from django.conf import settings

from annotation.models import Project
from judging.models import JudgeConfig

from .imports import prompts_import
from .models import GenerationRun, Generator, PromptSet
from .services import generation_run_start, generator_create, generator_update, rating_open

DEMO_GENERATOR = "local SmolLM2-135M"
DEMO_PROMPT_SET = "demo prompts"
DEMO_PLAN = {"temperatures": [0.7, 1.0], "samples": 1, "max_tokens": 96, "seed": 0}
DEMO_RUN_PROMPTS = 6

# (prompt, task type, difficulty)
DEMO_PROMPTS = [
    ("What is the capital of Australia?", "fact", "easy"),
    ("Explain in two sentences why the sky is blue.", "explain", "easy"),
    ("Write a haiku about a cup of tea.", "creative", "easy"),
    ("How many minutes are there in a week? Show the arithmetic.", "math", "easy"),
    ("Give three tips for writing a clear bug report.", "advice", "medium"),
    ("What is the difference between a list and a tuple in Python?", "code", "medium"),
    ("Summarise the plot of Romeo and Juliet in one sentence.", "summary", "easy"),
    ("Is 221 a prime number? Explain briefly.", "math", "medium"),
    ("Suggest a name for a bakery that only sells bread.", "creative", "easy"),
    ("Why do we see lightning before we hear thunder?", "explain", "easy"),
    ("Write a Python function that reverses a string.", "code", "easy"),
    ("What should I pack for a two-day hike in autumn?", "advice", "medium"),
]


def demo_prompt_records() -> list[dict]:
    return [{"id": f"demo-prompt-{i + 1:02d}", "prompt": text, "task_type": task, "difficulty": level}
            for i, (text, task, level) in enumerate(DEMO_PROMPTS)]  # fmt: skip


def demo_generation(project: Project, user) -> tuple[PromptSet, Generator]:
    """The demo's prompt set and local generator (created once; the generator repointed if LOCAL_MODEL_URL
    changed), open for the demo annotators to rate."""
    prompt_set = PromptSet.objects.filter(project=project, name=DEMO_PROMPT_SET).first()
    if prompt_set is None:
        path = settings.VAR_DIR / "demo_prompts.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in demo_prompt_records()), encoding="utf-8")
        prompt_set = prompts_import(project=project, path=path, name=DEMO_PROMPT_SET, user=user)
        rating_open(prompt_set=prompt_set, k=2)
    generator = Generator.objects.filter(project=project, name=DEMO_GENERATOR).first()
    if generator is None:
        generator = generator_create(project=project, user=user, name=DEMO_GENERATOR, base_url=settings.LOCAL_MODEL_URL,
                                     model="smollm2-135m", max_concurrency=1, requests_per_minute=600)  # fmt: skip
    elif generator.base_url != settings.LOCAL_MODEL_URL:
        generator = generator_update(generator=generator, base_url=settings.LOCAL_MODEL_URL)
    return prompt_set, generator


def demo_generation_run(generator: Generator, prompt_set: PromptSet, rater: JudgeConfig | None,
                        user) -> GenerationRun | None:  # fmt: skip
    """A first small run (a few prompts at two temperatures, rated by the demo judge), started once; None if the
    generator has run before."""
    if GenerationRun.objects.filter(generator=generator).exists():
        return None
    return generation_run_start(project=prompt_set.project, prompt_set=prompt_set, generator=generator, plan=DEMO_PLAN,
                                rater=rater, limit=DEMO_RUN_PROMPTS, user=user)  # fmt: skip
