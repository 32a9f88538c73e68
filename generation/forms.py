from __future__ import annotations

from django import forms

from annotation.imports.readers import FILE_FORMATS
from judging.models import JudgeConfig

from .models import Generator, PromptSet
from .pairing import STRATEGIES
from .plan import DEFAULT_PLAN
from .services import GENERATOR_SETTINGS


class PromptSetUploadForm(forms.Form):
    name = forms.CharField(max_length=100)
    file = forms.FileField(help_text="JSONL, JSON, CSV or Parquet: one prompt per record (prompt, instruction or "
                           "messages; optional id and metadata such as task type or difficulty).")  # fmt: skip
    file_format = forms.ChoiceField(choices=[("", "from the name"), *[(f, f) for f in FILE_FORMATS]], required=False)


class GeneratorForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500, assume_scheme="https", required=False,
        help_text="Endpoints: the OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1",
    )  # fmt: skip

    class Meta:
        model = Generator
        fields = list(GENERATOR_SETTINGS)
        help_texts = {
            "model": "Endpoints: the model name as the server knows it. Local checkpoints: a hub id, a folder or a "
            ".gguf file (as for training jobs).",
        }


def _temperatures(value: str) -> list[float]:
    try:
        return [float(t) for t in value.replace(",", " ").split()]
    except ValueError:
        raise forms.ValidationError("Give numbers from 0 to 2, separated by commas.") from None


class RunStartForm(forms.Form):
    prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.none(), to_field_name="public_id")
    generator = forms.ModelChoiceField(queryset=Generator.objects.none(), to_field_name="public_id")
    temperatures = forms.CharField(initial=", ".join(str(t) for t in DEFAULT_PLAN["temperatures"]),
                                   help_text="One sampling slot per temperature and sample.")  # fmt: skip
    samples = forms.IntegerField(min_value=1, max_value=16, initial=1, help_text="Samples per temperature.")
    top_p = forms.FloatField(min_value=0.01, max_value=1.0, initial=1.0)
    max_tokens = forms.IntegerField(min_value=1, max_value=32768, initial=DEFAULT_PLAN["max_tokens"])
    seed = forms.IntegerField(min_value=0, initial=0)
    system = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="System prompt",
                             help_text="Sent first, unless a prompt brings its own.")  # fmt: skip
    rater = forms.ModelChoiceField(queryset=JudgeConfig.objects.none(), to_field_name="public_id", required=False,
                                   help_text="A judge that scores each candidate 1-10 as it comes in.")  # fmt: skip
    limit = forms.IntegerField(required=False, min_value=1, help_text="The first this many prompts (empty: all).")

    def __init__(self, *args, prompt_sets=None, generators=None, judges=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prompt_set"].queryset = prompt_sets
        self.fields["generator"].queryset = generators
        self.fields["rater"].queryset = judges

    def clean_temperatures(self):
        return _temperatures(self.cleaned_data["temperatures"])

    def plan(self) -> dict:
        keys = ("temperatures", "samples", "top_p", "max_tokens", "seed", "system")
        return {k: self.cleaned_data[k] for k in keys}


class PairsForm(forms.Form):
    strategy = forms.ChoiceField(choices=[(s, s.replace("_", " vs ")) for s in STRATEGIES], initial="best_worst")
    per_prompt = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Pairs per prompt (at most)")
    min_margin = forms.FloatField(min_value=0, initial=1.0, label="Minimum score margin")
    different_generators = forms.BooleanField(required=False, label="Only pairs of different generators")
    include_flagged = forms.BooleanField(required=False, label="Include flagged candidates (empty, truncated, "
                                         "duplicate, naming a model)")  # fmt: skip


class KtoForm(forms.Form):
    good_at = forms.FloatField(min_value=1, max_value=10, initial=7, label="Desirable at a score of at least")
    bad_at = forms.FloatField(min_value=1, max_value=10, initial=4, label="Undesirable at a score of at most")
    include_flagged = forms.BooleanField(required=False, label="Include flagged candidates")


class RatingOpenForm(forms.Form):
    k = forms.IntegerField(min_value=0, max_value=20, label="People per candidate (0 closes it)")
    hide_identity_leaks = forms.BooleanField(required=False, label="Keep candidates that name a model away from people")


class HumanRatingForm(forms.Form):
    choice = forms.ChoiceField(choices=[("up", "up"), ("down", "down"), ("skip", "skip")])
    stars = forms.IntegerField(min_value=1, max_value=5, required=False)
    time_ms = forms.IntegerField(min_value=0, max_value=24 * 3600 * 1000, required=False)

    def clean(self):
        data = super().clean()
        data["up"] = {"up": True, "down": False}.get(data.get("choice"))
        if data["up"] is None:
            data["stars"] = None
        return data
