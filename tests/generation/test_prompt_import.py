"""Prompt sets: every file format, strings and chat messages, metadata, de-duplication, and bad files rejected
whole with the line and field named."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError

from generation.imports import PromptsRejected, prompts_import
from generation.models import Prompt, PromptSet
from tests.generation.helpers import write_jsonl

pytestmark = pytest.mark.django_db

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


def test_jsonl_with_strings_chat_metadata_and_repeats(project, lead, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "Say hi.", "metadata": {"difficulty": "easy"}, "task_type": "chat"},
        {"id": "b", "messages": CHAT},
        {"instruction": "Say hi."},  # the same prompt as line 1: skipped
        {"prompt": "Write a haiku."},
    ])  # fmt: skip
    prompt_set = prompts_import(project=project, path=path, name="first", user=lead)
    assert (prompt_set.rows_read, prompt_set.prompts_created, prompt_set.duplicates_skipped) == (4, 3, 1)
    first, chat, haiku = Prompt.objects.filter(prompt_set=prompt_set).order_by("pk")
    assert first.messages == [{"role": "user", "content": "Say hi."}] and not first.is_chat
    assert first.metadata == {"difficulty": "easy", "task_type": "chat"} and first.external_id == "a"
    assert chat.messages == CHAT and chat.is_chat and haiku.line == 4


def test_csv_json_and_parquet(project, lead, tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text('id,prompt,difficulty\n1,"Say ""hi"".",easy\n2,Count to 3.,hard\n')
    json_path = tmp_path / "p.json"
    json_path.write_text(json.dumps([{"prompt": "One."}, {"prompt": CHAT}]))
    parquet_path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"prompt": ["Alpha?", "Beta?"], "task": ["qa", "qa"]}), parquet_path)
    for name, path, n in (("csv", csv_path, 2), ("json", json_path, 2), ("parquet", parquet_path, 2)):
        assert prompts_import(project=project, path=path, name=name, user=lead).prompts_created == n
    assert Prompt.objects.get(prompt_set__name="csv", external_id="1").metadata == {"difficulty": "easy"}
    assert Prompt.objects.get(prompt_set__name="json", is_chat=True).messages == CHAT


def test_a_bad_line_rejects_the_file_naming_line_and_field(project, lead, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "Fine."},
        {"prompt": ""},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        "{not json",
        {"response": "no prompt here"},
    ])  # fmt: skip
    with pytest.raises(PromptsRejected) as caught:
        prompts_import(project=project, path=path, name="bad", user=lead)
    text = str(caught.value)
    assert "bad.jsonl: 4 errors; nothing was imported." in text
    assert "bad.jsonl, line 2, field 'prompt': must be a non-empty string" in text
    assert "line 3, field 'messages[1].role'" in text and "line 4" in text
    assert "line 5: has no prompt" in text and "found keys: response" in text
    assert not PromptSet.objects.exists() and not Prompt.objects.exists()


def test_the_name_must_be_new_and_the_file_not_empty(project, lead, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "x"}])
    prompts_import(project=project, path=path, name="same", user=lead)
    with pytest.raises(ValidationError, match="already has a prompt set named 'same'"):
        prompts_import(project=project, path=path, name="same", user=lead)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(PromptsRejected, match="contains no records"):
        prompts_import(project=project, path=empty, name="empty", user=lead)
    assert PromptSet.objects.count() == 1
