from __future__ import annotations

from django import forms

from ..models import Composite
from .axes import EXAMPLE, parse_axes_text


class CompositeForm(forms.Form):
    name = forms.CharField(max_length=100)
    normalisation = forms.ChoiceField(
        choices=Composite.Normalisation.choices,
        initial=Composite.Normalisation.Z,
        help_text="How each scorer's margins are put on one scale before weighting: z-score (margin / its spread "
        "over the project) or rank (its position among the project's margins, -1 to 1; robust to outliers).",
    )
    axes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": EXAMPLE}),
        help_text="One axis per line: axis weight: judge × weight, judge × weight. Weights default to 1.",
    )

    def clean_axes(self):
        try:
            return parse_axes_text(self.cleaned_data["axes"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
