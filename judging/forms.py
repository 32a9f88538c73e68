from __future__ import annotations

from django import forms

from .models import JudgeConfig
from .services import JUDGE_SETTINGS


class JudgeForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500, assume_scheme="https", help_text="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1"
    )
    system = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="System prompt")
    template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14}),
        label="Prompt template",
        help_text="Placeholders: {guidelines} {criteria} {prompt} {response_a} {response_b} "
        "(response_a is whichever response the judge sees first). Editing it makes a new prompt version.",
    )
    shared = forms.BooleanField(required=False, label="Share with every project (admins only)")

    class Meta:
        model = JudgeConfig
        fields = list(JUDGE_SETTINGS)
        help_texts = {"model": "Model name as the server knows it, e.g. gpt-4o-mini or a local model's name."}

    def __init__(self, *args, can_share: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_share:
            del self.fields["shared"]


class RewardModelForm(forms.Form):
    name = forms.CharField(max_length=100)
    model = forms.CharField(
        max_length=200,
        help_text="A sequence-classification reward model: a hub id (e.g. Skywork/Skywork-Reward-V2-Llama-3.1-8B), a "
        "folder with config.json, or a .gguf base model with an adapter below (read on the gpu workers).",
    )
    adapter = forms.CharField(
        max_length=500, required=False, help_text="A LoRA adapter folder with its score head (a reward-model job's)."
    )
    shared = forms.BooleanField(required=False, label="Share with every project (admins only)")

    def __init__(self, *args, can_share: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_share:
            del self.fields["shared"]


class RunStartForm(forms.Form):
    judge = forms.ModelChoiceField(queryset=JudgeConfig.objects.none(), to_field_name="public_id")
    only_unlabelled = forms.BooleanField(required=False, label="Only pairs without human labels")
    limit = forms.IntegerField(required=False, min_value=1, help_text="At most this many pairs (empty: all).")

    def __init__(self, *args, judges=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["judge"].queryset = judges
