from __future__ import annotations

from django import forms

from .models import Choice, Membership, Project
from .selectors import user_to_add
from .services.projects import PROJECT_SETTINGS


class NameListField(forms.CharField):
    """Comma-separated names in the form, a list in the model."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(value)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        return [part.strip() for part in value.split(",") if part.strip()]


class ProjectSettingsForm(forms.ModelForm):
    strength_scale = NameListField(
        required=False, help_text="Optional, weakest first, comma-separated: slightly, clearly, much"
    )
    criteria = NameListField(required=False, help_text="Optional, comma-separated: helpfulness, harmlessness")

    class Meta:
        model = Project
        fields = list(PROJECT_SETTINGS)


class ProjectCreateForm(ProjectSettingsForm):
    guidelines = forms.CharField(widget=forms.Textarea, required=False, help_text="Markdown.")

    class Meta(ProjectSettingsForm.Meta):
        fields = ["slug", *ProjectSettingsForm.Meta.fields]


class GuidelinesForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 18}), required=False, label="Guidelines (markdown)")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def clean_username(self):
        username = self.cleaned_data["username"]
        user = user_to_add(username=username)
        if user is None:
            raise forms.ValidationError(f"No active user named {username!r}.")
        return user


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, JSON array, CSV or Parquet.")
    format = forms.ChoiceField(
        choices=[("", "Detect"), ("pairs", "pairs"), ("dpo", "dpo"), ("ultrafeedback", "ultrafeedback")],
        required=False,
    )
    ultrafeedback_pairs = forms.ChoiceField(
        choices=[("all", "every pair of completions"), ("best-vs-rest", "best vs each other")],
        required=False,
        initial="all",
        label="UltraFeedback pairs",
    )


class PairGoldForm(forms.Form):
    gold = forms.ChoiceField(required=False, label="Expected answer")
    gold_explanation = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        label="Explanation (markdown)",
        help_text="Why this is the expected answer; quote the guideline it illustrates. Shown after practice items.",
    )

    def __init__(self, *args, choices: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        names = dict(Choice.choices)
        self.fields["gold"].choices = [("", "Not a calibration pair"), *((c, names[c]) for c in choices)]
