from __future__ import annotations

from django import forms

from .curation import SOURCES, RecipeConfig
from .models import DatasetExport

_DEFAULTS = RecipeConfig()


class RecipeForm(forms.Form):
    name = forms.CharField(max_length=100)
    source = forms.ChoiceField(
        choices=[(s, s.replace("_", " ")) for s in SOURCES],
        initial=_DEFAULTS.source,
        help_text="Where each pair's preference comes from.",
    )
    include_gold = forms.BooleanField(required=False, help_text="Keep calibration pairs (their expected answer).")
    min_human_agreement = forms.FloatField(
        min_value=0, max_value=1, initial=0.0, help_text="Share of labels in the majority, 0–1."
    )
    min_vote_margin = forms.FloatField(
        min_value=0, max_value=1, initial=0.0, help_text="|votes A − votes B| / labels, 0–1."
    )
    min_judge_margin = forms.FloatField(
        min_value=0, max_value=9, initial=0.0, help_text="|mean score difference| of the judges, 0–9."
    )
    drop_judge_inconsistent = forms.BooleanField(
        required=False, initial=True, help_text="Drop pairs where a judge flipped with the order."
    )
    both_bad_as_undesirable = forms.BooleanField(
        required=False, help_text="KTO: a both-bad pair gives two undesirable examples."
    )
    response_similarity = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=_DEFAULTS.response_similarity,
        help_text="Responses at least this similar count as the same.",
    )
    prompt_similarity = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=_DEFAULTS.prompt_similarity,
        help_text="Prompts at least this similar form one group.",
    )
    max_pairs_per_prompt = forms.IntegerField(min_value=1, required=False, help_text="Empty: no cap.")
    balance_length = forms.BooleanField(required=False, help_text="Equalise chosen-longer and chosen-shorter.")
    seed = forms.IntegerField(min_value=0, initial=0)

    def config(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "name"}


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=DatasetExport.Format.choices)
    conversational = forms.BooleanField(required=False, help_text="Message lists (keeps roles and turns).")
    test_fraction = forms.FloatField(min_value=0, max_value=0.9, initial=0.1)
    seed = forms.IntegerField(min_value=0, initial=0)
