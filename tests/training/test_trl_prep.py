"""Exports go through TRL's own dataset preparation for the trainers that read them (DPOTrainer, KTOTrainer, ORPO),
with a tiny model on CPU. The tokenizer (and its chat template) is SmolLM2's, read from the GGUF that
`make judge-server` fetches; the model is a one-layer Llama with that vocabulary (preparation needs no weights)."""

import os

import pytest
from datasets import load_from_disk

from annotation.models import Label, Pair
from tests.factories import make_pairs
from training.services import export_create, export_root, recipe_save

pytestmark = pytest.mark.django_db


def exported(project, lead, fmt, conversational):
    for i, pair in enumerate(make_pairs(project, 8)):
        if i % 2:
            chat = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": "Which part?"},
                {"role": "user", "content": "All of it."},
            ]
            Pair.objects.filter(pk=pair.pk).update(prompt=chat)
        Label.objects.create(project=project, pair=pair, source="external", external_annotator="x",
                             choice="A" if i % 3 else "B")  # fmt: skip
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt=fmt, user=lead, conversational=conversational,
                           test_fraction=0.25)  # fmt: skip
    return load_from_disk(str(export_root() / export.files["hf"]["path"]))


@pytest.mark.parametrize("conversational", [False, True])
@pytest.mark.parametrize("trainer", ["dpo", "orpo", "kto"])
def test_trl_prepares_every_export(project, lead, tiny_model_dir, tmp_path, trainer, conversational):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = exported(project, lead, "kto" if trainer == "kto" else "dpo", conversational)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    common = {"output_dir": str(tmp_path / "out"), "max_length": 128, "report_to": [], "use_cpu": True,
              "per_device_train_batch_size": 2}  # fmt: skip
    if trainer == "dpo":
        from trl import DPOConfig, DPOTrainer

        prepared = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=data["train"],
                              eval_dataset=data["test"], processing_class=tokenizer).train_dataset  # fmt: skip
        assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(prepared.column_names)
    elif trainer == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        prepared = ORPOTrainer(model=model, args=ORPOConfig(**common), train_dataset=data["train"],
                               processing_class=tokenizer).train_dataset  # fmt: skip
        assert any(c.startswith("chosen") and c.endswith("ids") for c in prepared.column_names)
    else:
        from trl import KTOConfig, KTOTrainer

        prepared = KTOTrainer(model=model, args=KTOConfig(**common), train_dataset=data["train"],
                              processing_class=tokenizer).train_dataset  # fmt: skip
        assert {"prompt_ids", "completion_ids"} <= set(prepared.column_names)
    assert len(prepared) == len(data["train"])  # nothing dropped or truncated away
