"""The demo's judge: SmolLM2 behind the local model server that `make run` starts. A 135M model is a poor judge
(it mostly answers "A"), which the run report shows honestly: a high first-slot pick rate and many flips."""

from __future__ import annotations

from django.conf import settings

from annotation.models import Project

from .models import JudgeConfig, JudgeRun
from .services import judge_create, judge_update, reward_model_create, run_start

DEMO_JUDGE = "local SmolLM2-135M"
DEMO_RUN_PAIRS = 12
# At temperature 0 SmolLM2 scores nearly every answer 1, so best-vs-worst pairs never have a margin; sampled at T=2
# about a quarter of its scores differ. That is noise, not judgement, but it lets a campaign's loop run on a laptop.
DEMO_RATER = "local SmolLM2-135M, sampled (T=2)"
# SmolLM2 with a fresh (untrained) classification head: its audit shows what an untrained scorer looks like beside
# the length baseline; the one to keep is trained from the demo export (the reward-lora preset, then "Use as a
# reward model" on the job's page).
DEMO_REWARD_MODEL = "local SmolLM2-135M reward head (untrained)"


def demo_judge(project: Project, user) -> JudgeConfig:
    """The project's local judge (created once; pointed at LOCAL_MODEL_URL if that changed)."""
    judge = JudgeConfig.objects.filter(project=project, name=DEMO_JUDGE).first()
    if judge is None:
        return judge_create(project=project, user=user, name=DEMO_JUDGE, base_url=settings.LOCAL_MODEL_URL,
                            model="smollm2-135m", max_tokens=64, max_concurrency=1,
                            requests_per_minute=600)  # fmt: skip
    if judge.base_url != settings.LOCAL_MODEL_URL:
        judge = judge_update(judge=judge, base_url=settings.LOCAL_MODEL_URL)
    return judge


def demo_rater(project: Project, user) -> JudgeConfig:
    """The local model as a sampled rater for the demo's campaigns (created once; repointed as demo_judge)."""
    judge = JudgeConfig.objects.filter(project=project, name=DEMO_RATER).first()
    if judge is None:
        return judge_create(project=project, user=user, name=DEMO_RATER, base_url=settings.LOCAL_MODEL_URL,
                            model="smollm2-135m", max_tokens=48, max_concurrency=1, requests_per_minute=600,
                            temperature=2.0)  # fmt: skip
    if judge.base_url != settings.LOCAL_MODEL_URL:
        judge = judge_update(judge=judge, base_url=settings.LOCAL_MODEL_URL)
    return judge


def demo_judge_run(judge: JudgeConfig, user) -> JudgeRun | None:
    """A first small run of the demo judge, started once (when the local model is ready); None if one exists."""
    if JudgeRun.objects.filter(judge=judge).exists():
        return None
    return run_start(project=judge.project, judge=judge, user=user, limit=DEMO_RUN_PAIRS)


def demo_reward_model(project: Project, user) -> JudgeConfig | None:
    """The local model as a reward model (created once, where the model file is); None without the file."""
    judge = JudgeConfig.objects.filter(project=project, name=DEMO_REWARD_MODEL).first()
    if judge is None and settings.LOCAL_MODEL_PATH.exists():
        judge = reward_model_create(project=project, user=user, name=DEMO_REWARD_MODEL,
                                    model=str(settings.LOCAL_MODEL_PATH))  # fmt: skip
    return judge


DEMO_COMPOSITE = "demo: judge + reward model"


def demo_composite(project: Project, user) -> None:
    """One composite (created once): the demo judge and the reward model on one axis, equal weights, z-normalised.
    Compute it on its page once both have scored."""
    from .models import Composite
    from .stacking.services import composite_create

    if Composite.objects.filter(project=project, name=DEMO_COMPOSITE).exists():
        return
    if not JudgeConfig.objects.filter(project=project, name=DEMO_REWARD_MODEL).exists():
        return
    scorers = [{"judge": DEMO_JUDGE, "weight": 1}, {"judge": DEMO_REWARD_MODEL, "weight": 1}]
    composite_create(project=project, user=user, name=DEMO_COMPOSITE, normalisation="z",
                     axes=[{"name": "helpful", "weight": 1, "scorers": scorers}])  # fmt: skip
