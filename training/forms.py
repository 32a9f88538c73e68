from __future__ import annotations

from django import forms

from .curation.recipe import SOURCES, RecipeConfig
from .jobs.health import ALARMS, DEFAULT_POLICY, POLICIES
from .jobs.spec import CHECKPOINTING, DPO_LOSSES, METHODS, PRECISIONS, PRESETS, QUANTIZATIONS, SHARDINGS
from .jobs.spec import HELP as SPEC_HELP
from .models import DatasetExport, Sweep
from .sweeps.compare import METRICS
from .sweeps.points import SEED_003, parse_settings

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
    near_duplicates = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Compare texts: drop near-identical responses and near-duplicate pairs, group near-same prompts "
        "(off: exact prompt groups only, much faster on very large projects).",
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
    criterion = forms.ChoiceField(
        required=False,
        help_text="Per-axis preference data: the human majority of this criterion's choices instead of the overall "
        "choice (sources with human labels only).",
    )

    composite = forms.ChoiceField(
        required=False,
        help_text="The composite (judges and reward models stacked per axis) the composite sources read.",
    )

    def __init__(self, *args, criteria: list[str] = (), composites: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        # the project's own criteria and composites, or no field at all when it has none
        for name, names, empty in (("criterion", criteria, "the overall choice"), ("composite", composites, "none")):
            if names:
                self.fields[name].choices = [("", empty), *((n, n) for n in names)]
            else:
                del self.fields[name]

    def config(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "name"}

    def clean(self):
        data = super().clean()
        if not self.errors:  # settings that go together (a criterion with a human source, a composite with its sources)
            try:
                RecipeConfig.from_dict(self.config())
            except (TypeError, ValueError) as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=DatasetExport.Format.choices)
    conversational = forms.BooleanField(required=False, help_text="Message lists (keeps roles and turns).")
    test_fraction = forms.FloatField(min_value=0, max_value=0.9, initial=0.1)
    seed = forms.IntegerField(min_value=0, initial=0)


class HubPushForm(forms.Form):
    repo_id = forms.CharField(max_length=200, label="Dataset repo", help_text="owner/name on the Hugging Face Hub "
                              "(created if missing).")  # fmt: skip
    private = forms.BooleanField(required=False, initial=True, help_text="An existing repo keeps its visibility; a "
                                 "public one is refused when this is ticked.")  # fmt: skip
    token_env = forms.CharField(max_length=100, initial="HF_TOKEN", label="Token variable",
                                help_text="The name of the environment variable that holds a write token on the "
                                "workers. Never the token itself.")  # fmt: skip


def export_label(e: DatasetExport) -> str:
    return (f"{e.project.name} · {e.recipe.name} v{e.recipe.version} · {e.format.upper()} · {e.rows_train} rows · "
            f"{e.created_at:%Y-%m-%d %H:%M}")  # fmt: skip


class TrainingJobForm(forms.Form):
    """Launch a training job: an export, a preset, a base model, and any setting to change from the preset.
    Empty fields keep the preset's value (training.jobs.spec.JobSpec has the defaults)."""

    export = forms.ModelChoiceField(
        queryset=DatasetExport.objects.none(),
        to_field_name="public_id",
        help_text="A ready export: DPO format for DPO, ORPO, SimPO and reward models; KTO format for KTO.",
    )
    name = forms.CharField(max_length=200, required=False)
    preset = forms.ChoiceField(choices=[(k, v["label"]) for k, v in PRESETS.items()], initial="dpo-lora")
    base_model = forms.CharField(max_length=500, help_text=SPEC_HELP["base_model"])
    method = forms.ChoiceField(choices=[("", "(preset)"), *[(m, m.upper()) for m in METHODS]], required=False,
                               help_text=SPEC_HELP["method"])  # fmt: skip
    loss_type = forms.ChoiceField(choices=[("", "(preset)"), *[(x, x) for x in DPO_LOSSES]], required=False,
                                  help_text=SPEC_HELP["loss_type"])  # fmt: skip
    lora = forms.ChoiceField(choices=[("", "(preset)"), ("yes", "LoRA adapter"), ("no", "full fine-tuning")],
                             required=False, help_text=SPEC_HELP["lora"])  # fmt: skip
    lora_r = forms.IntegerField(required=False, min_value=1, help_text=SPEC_HELP["lora_r"])
    lora_alpha = forms.IntegerField(required=False, min_value=1, help_text=SPEC_HELP["lora_alpha"])
    learning_rate = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["learning_rate"])
    beta = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["beta"])
    epochs = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["epochs"])
    max_steps = forms.IntegerField(required=False, min_value=0, help_text=SPEC_HELP["max_steps"])
    max_length = forms.IntegerField(required=False, min_value=16, help_text=SPEC_HELP["max_length"])
    batch_size = forms.IntegerField(required=False, min_value=1, help_text=SPEC_HELP["batch_size"])
    micro_batch_size = forms.IntegerField(required=False, min_value=0, help_text=SPEC_HELP["micro_batch_size"])
    gradient_checkpointing = forms.ChoiceField(
        choices=[("", "(preset)"), *[(c, c) for c in CHECKPOINTING]],
        required=False,
        help_text=SPEC_HELP["gradient_checkpointing"],
    )
    precision = forms.ChoiceField(choices=[("", "(preset)"), *[(p, p) for p in PRECISIONS]], required=False,
                                  help_text=SPEC_HELP["precision"])  # fmt: skip
    torch_compile = forms.ChoiceField(
        choices=[("", "(preset)"), *[(c, c) for c in CHECKPOINTING]],
        required=False,
        help_text=SPEC_HELP["torch_compile"],
    )
    fused_kernels = forms.ChoiceField(choices=[("", "(preset)"), *[(c, c) for c in CHECKPOINTING]], required=False,
                                      help_text=SPEC_HELP["fused_kernels"])  # fmt: skip
    quantization = forms.ChoiceField(choices=[("", "(preset)"), *[(c, c) for c in QUANTIZATIONS]], required=False,
                                     help_text=SPEC_HELP["quantization"])  # fmt: skip
    sharding = forms.ChoiceField(choices=[("", "(preset)"), *[(c, c) for c in SHARDINGS]], required=False,
                                 help_text=SPEC_HELP["sharding"])  # fmt: skip
    seed = forms.IntegerField(required=False, min_value=0, help_text=SPEC_HELP["seed"])
    rpo_alpha = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["rpo_alpha"])
    label_smoothing = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["label_smoothing"])
    ld_alpha = forms.FloatField(required=False, min_value=0, max_value=1, help_text=SPEC_HELP["ld_alpha"])
    use_weighting = forms.ChoiceField(choices=[("", "(preset)"), ("yes", "yes"), ("no", "no")], required=False,
                                      help_text=SPEC_HELP["use_weighting"])  # fmt: skip
    kl_max = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["kl_max"])
    length_checks = forms.IntegerField(required=False, min_value=0, help_text=SPEC_HELP["length_checks"])
    center_rewards = forms.FloatField(required=False, min_value=0, help_text=SPEC_HELP["center_rewards"])
    reward_margin = forms.ChoiceField(choices=[("", "(preset)"), ("yes", "yes"), ("no", "no")], required=False,
                                      help_text=SPEC_HELP["reward_margin"])  # fmt: skip

    SETTINGS = ("base_model", "method", "loss_type", "lora_r", "lora_alpha", "learning_rate", "beta", "epochs",
                "max_steps", "max_length", "batch_size", "micro_batch_size", "gradient_checkpointing", "precision",
                "torch_compile", "fused_kernels", "quantization", "sharding", "seed", "rpo_alpha", "label_smoothing",
                "ld_alpha", "kl_max", "length_checks",
                "center_rewards", *(f"on_{name}" for name in ALARMS))  # fmt: skip

    def __init__(self, *args, exports=None, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ALARMS:  # one policy per health alarm: off, warn or stop
            self.fields[f"on_{name}"] = forms.ChoiceField(
                choices=[("", f"(preset: {DEFAULT_POLICY[name]})"), *[(p, p) for p in POLICIES]], required=False,
                help_text=SPEC_HELP[f"on_{name}"],
            )  # fmt: skip
        if exports is not None:
            self.fields["export"].queryset = exports
        self.fields["export"].label_from_instance = export_label

    def settings(self) -> dict:
        data = self.cleaned_data
        out = {k: data[k] for k in self.SETTINGS if data.get(k) not in (None, "")}
        for flag in ("lora", "use_weighting", "reward_margin"):
            if data.get(flag):
                out[flag] = data[flag] == "yes"
        return out


class EvaluationForm(forms.Form):
    """Evaluate a finished job: against its base model or another job, on its export's held-out prompts or a
    prompt set, judged by one of the project's judges (both orders)."""

    judge = forms.ModelChoiceField(queryset=None, help_text="Compares the two answers of every prompt, in both orders.")
    baseline_job = forms.ModelChoiceField(queryset=None, required=False, empty_label="its base model",
                                          help_text="Compare with this job's model, not the base.")  # fmt: skip
    prompt_set = forms.ModelChoiceField(queryset=None, required=False, empty_label="the export's held-out prompts",
                                        help_text="Prompts both models answer.")  # fmt: skip
    limit = forms.IntegerField(min_value=1, max_value=10000, initial=50, help_text="How many prompts.")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=0.7, help_text="The same for both models.")
    max_tokens = forms.IntegerField(min_value=1, max_value=32768, initial=256, help_text="Answer length, in tokens.")

    def __init__(self, *args, judges=None, prompt_sets=None, jobs=None, **kwargs):
        super().__init__(*args, prefix="evaluation", **kwargs)
        self.fields["judge"].queryset = judges
        self.fields["prompt_set"].queryset = prompt_sets
        self.fields["baseline_job"].queryset = jobs

    def plan(self) -> dict:
        return {"temperatures": [self.cleaned_data["temperature"]], "max_tokens": self.cleaned_data["max_tokens"]}


SEED_003_AXES = "\n".join(f"{k}: {', '.join(f'{v:g}' for v in values)}" for k, values in SEED_003.items())


class SweepForm(forms.Form):
    """A sweep on an export: what every run shares (preset, base model, settings) and the axes that vary."""

    export = forms.ModelChoiceField(
        queryset=DatasetExport.objects.none(), to_field_name="public_id",
        help_text="A ready export (DPO format for DPO, ORPO, SimPO; KTO for KTO).",
    )  # fmt: skip
    name = forms.CharField(max_length=200, required=False)
    preset = forms.ChoiceField(choices=[(k, v["label"]) for k, v in PRESETS.items()], initial="dpo-lora")
    base_model = forms.CharField(max_length=500, help_text=SPEC_HELP["base_model"])
    axes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial=SEED_003_AXES,
        help_text="One setting per line, field: values. The default is seed 003's DPO grid (β × learning rate × "
        "warmup, 24 runs; its learning rates are for full fine-tuning, LoRA usually wants ~10× more). Random mode "
        "also takes ranges, e.g. learning_rate: 1e-6..1e-4.",
    )  # fmt: skip
    settings = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False,
        help_text="Settings every run shares, field: value per line (e.g. max_steps: 200).",
    )  # fmt: skip
    mode = forms.ChoiceField(choices=Sweep.Mode.choices, initial=Sweep.Mode.GRID)
    draws = forms.IntegerField(min_value=0, max_value=256, initial=8, required=False,
                               help_text="Random mode: how many runs.")  # fmt: skip
    seed = forms.IntegerField(min_value=0, initial=0, help_text="Random mode: the draws' seed.")
    max_runs = forms.IntegerField(min_value=1, max_value=256, initial=24, help_text="A bigger grid is refused.")
    budget_minutes = forms.FloatField(min_value=0, required=False,
                                      help_text="GPU time for all runs; queued runs are cancelled once it is spent "
                                                "(empty: no limit).")  # fmt: skip
    prune_at = forms.FloatField(
        min_value=0, max_value=0.99, initial=0, required=False,
        help_text="Early termination: at this share of its steps (e.g. 0.5), a run whose loss is worse than the median "
        "of the earlier runs at that step stops (0: never).",
    )  # fmt: skip
    metric = forms.ChoiceField(choices=[("", "LC win rate, else held-out accuracy"), *[(k, m.label) for k, m in
                                                                                     METRICS.items()]],
                               required=False, help_text="Ranks the runs (the page can re-rank by any).")  # fmt: skip

    def __init__(self, *args, exports=None, **kwargs):
        super().__init__(*args, **kwargs)
        if exports is not None:
            self.fields["export"].queryset = exports
        self.fields["export"].label_from_instance = export_label

    def clean_settings(self):
        try:
            return parse_settings(self.cleaned_data.get("settings") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class CampaignForm(forms.Form):
    """An iterative DPO campaign: where the prompts come from, how each round samples, rates, pairs, curates and
    trains, how many rounds and when to stop."""

    name = forms.CharField(max_length=200)
    prompt_set = forms.ModelChoiceField(queryset=None, help_text="The prompt pool, split into one batch per round "
                                        "(its project is the campaign's).")  # fmt: skip
    per_round = forms.IntegerField(min_value=1, initial=100, help_text="Fresh prompts each round samples.")
    reuse_prompts = forms.BooleanField(required=False, help_text="Walk the pool again when it runs out (otherwise "
                                       "no prompt is used in two rounds).")  # fmt: skip
    eval_prompts = forms.IntegerField(min_value=1, initial=50, help_text="Held out from the pool's end: every "
                                      "round is judged on the same prompts, against the base and the previous "
                                      "round.")  # fmt: skip
    base_model = forms.CharField(max_length=500, help_text=SPEC_HELP["base_model"])
    rounds = forms.IntegerField(min_value=1, max_value=10, initial=3, help_text="Seed 003: three to five.")
    samples = forms.IntegerField(min_value=2, max_value=16, initial=4, help_text="Candidates per prompt per round.")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=1.0)
    max_tokens = forms.IntegerField(min_value=1, max_value=32768, initial=256)
    judge = forms.ModelChoiceField(queryset=None, help_text="Rates candidates (for best-vs-worst pairs), labels the "
                                   "pairs people leave, and judges every round's evaluation.")  # fmt: skip
    strategy = forms.ChoiceField(choices=[("best_worst", "Best vs worst score (RLHFlow)"),
                                          ("best_random", "Best vs a random lower one"),
                                          ("all", "Every two candidates (no scores needed)")],
                                 initial="best_worst")  # fmt: skip
    min_margin = forms.FloatField(min_value=0, initial=1.0, help_text="Least score difference in a pair (1-10).")
    include_flagged = forms.BooleanField(
        required=False,
        help_text="Pair flagged candidates too (cut off at the token limit, refusals, repeats): short answers on a CPU "
        "are mostly cut off.",
    )
    people_k = forms.IntegerField(
        min_value=0,
        max_value=20,
        initial=0,
        help_text="People labelling each pair first (0: the judge labels them all).",
    )
    people_minutes = forms.FloatField(min_value=0, required=False, help_text="How long people have before the judge "
                                      "labels what they left (empty: wait for them).")  # fmt: skip
    recipe = forms.ModelChoiceField(queryset=None, help_text="The curation recipe each round's pairs go through.")
    preset = forms.ChoiceField(choices=[(k, v["label"]) for k, v in PRESETS.items()], initial="dpo-lora")
    settings = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Training settings every round shares, field: value per line.",
    )
    reference = forms.ChoiceField(
        choices=[
            ("initial", "The initial model (RLHFlow: the reference stays put)"),
            ("previous", "The previous round's model"),
        ],
        initial="initial",
    )
    stop_win_rate = forms.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        help_text="Stop when a round wins less than this against the previous one.",
    )
    stop_kl = forms.FloatField(min_value=0, required=False, help_text="Stop when a round's KL from the base exceeds "
                               "this.")  # fmt: skip
    budget_usd = forms.DecimalField(min_value=0, required=False, decimal_places=4,
                                    help_text="Stop starting rounds once the campaign has spent this (judges, "
                                    "endpoints).")  # fmt: skip

    def __init__(self, *args, prompt_sets=None, judges=None, recipes=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prompt_set"].queryset = prompt_sets
        self.fields["prompt_set"].label_from_instance = lambda s: f"{s.project.name} · {s.name} ({s.prompts_created})"
        self.fields["judge"].queryset = judges
        self.fields["judge"].label_from_instance = lambda j: f"{j.project.name if j.project else 'shared'} · {j.name}"
        self.fields["recipe"].queryset = recipes
        self.fields["recipe"].label_from_instance = lambda r: f"{r.project.name} · {r}"

    def clean_settings(self):
        try:
            return parse_settings(self.cleaned_data.get("settings") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
