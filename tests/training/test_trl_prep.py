"""Exports go through TRL's own dataset preparation for the trainers that read them (DPOTrainer, KTOTrainer, ORPO),
with a tiny model on CPU. The tokenizer (and its chat template) is SmolLM2's, read from the GGUF that
`make judge-server` fetches; the model is a one-layer Llama with that vocabulary (preparation needs no weights)."""

import os

import pytest
from datasets import load_from_disk

from tests.training.conftest import labelled_export
from training.storage import export_root

pytestmark = pytest.mark.django_db


def exported(project, lead, fmt, conversational):
    export = labelled_export(project, lead, fmt, n=8, conversational=conversational, chat_every=2)
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


def test_trl_prepares_kto_rows_from_rated_candidates(project, lead, tiny_model_dir, tmp_path):
    """KTO rows built from generation ratings, with the class weights set from the counts, go through KTOTrainer."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    from generation.services import kto_rows
    from tests.generation.helpers import rated_candidates

    prompts, _ = rated_candidates(project, lead, tmp_path, [[("Paris.", 9), ("Lyon, I think.", 2), ("Rome.", 1)],
                                                            [("Four.", 8), ("Five.", 3)]])  # fmt: skip
    kto = kto_rows(prompt_set=prompts)
    assert (kto.desirable, kto.undesirable, kto.desirable_weight, kto.undesirable_weight) == (2, 3, 1.5, 1.0)
    args = KTOConfig(output_dir=str(tmp_path / "out"), max_length=128, report_to=[], use_cpu=True,
                     per_device_train_batch_size=2, desirable_weight=kto.desirable_weight,
                     undesirable_weight=kto.undesirable_weight)  # fmt: skip
    prepared = KTOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
                          train_dataset=Dataset.from_list(kto.rows),
                          processing_class=AutoTokenizer.from_pretrained(tiny_model_dir)).train_dataset  # fmt: skip
    assert {"prompt_ids", "completion_ids"} <= set(prepared.column_names) and len(prepared) == 5


@pytest.mark.parametrize("conversational", [False, True])
def test_reward_rows_are_what_the_reward_judge_scores(project, lead, tiny_model_dir, tmp_path, conversational):
    """A reward-model job tokenizes the pairs itself, as the reward-model judge renders a pair's prompt and response
    (judging.rewards), so the scorer sees what it was trained on; RewardTrainer takes the rows as they are. A standard
    export writes a multi-turn prompt as one text, so only a conversational export matches the judge on those."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from annotation.models import Pair
    from judging.rewards.engine import conversation
    from judging.rewards.scorer import render
    from training.runner.reward import reward_rows

    data = exported(project, lead, "dpo", conversational)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows, dropped = reward_rows(data["train"], tokenizer, max_length=512, margin=False)
    assert dropped == 0
    prompts = dict(Pair.objects.filter(project=project).values_list("pk", "prompt"))
    checked = 0
    for record, row in zip(data["train"], rows, strict=True):
        prompt = prompts[record["pair_id"]]
        if len(prompt) > 1 and not conversational:  # multi-turn, written as one text by a standard export
            continue
        for side in ("chosen", "rejected"):
            text = record[side][-1]["content"] if conversational else record[side]
            judged = tokenizer(render(tokenizer, [conversation(prompt, text)]), add_special_tokens=False)
            assert row[f"{side}_ids"] == judged["input_ids"][0]
        checked += 1
    assert checked >= len(rows) // 2
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    args = RewardConfig(output_dir=str(tmp_path / "out"), max_length=512, report_to=[], use_cpu=True, bf16=False,
                        per_device_train_batch_size=2, remove_unused_columns=False)  # fmt: skip
    prepared = RewardTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer).train_dataset
    assert {"chosen_ids", "rejected_ids"} <= set(prepared.column_names) and len(prepared) == len(rows)
