"""Print a project's agreement figures: `python manage.py project_quality <slug> [--space ...] [--json]`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.quality.agreement import DEFAULT_SPACE, LABEL_SPACES
from annotation.selectors import project_quality


def _fmt(figure: dict) -> str:
    value, (lo, hi) = figure["value"], figure["ci95"]
    if value is None:
        return "undefined"
    return f"{value:.3f}" + (f"  (95% CI {lo:.3f} to {hi:.3f})" if lo is not None else "")


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _secs(value) -> str:
    return "–" if value is None else f"{value:.1f} s"


class Command(BaseCommand):
    help = "Agreement between a project's annotators (Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--space", choices=list(LABEL_SPACES), default=DEFAULT_SPACE)
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the full report as JSON")
        parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples for the CIs")

    def handle(self, *args, slug, space, as_json: bool, bootstrap: int, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project with slug {slug!r}.")
        report = project_quality(project, space=space, n_boot=bootstrap)
        if as_json:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"{project.name}: {report['labels']} labels, {report['annotators']} annotators, "
            f"{report['items_with_two_or_more_labels']} pairs with 2+ labels (label space: {space})"
        )
        self.stdout.write(f"  Fleiss' kappa       {_fmt(report['fleiss_kappa'])}")
        self.stdout.write(f"  Krippendorff alpha  {_fmt(report['krippendorff_alpha'])}")
        self.stdout.write(f"  percent agreement   {_fmt(report['percent_agreement'])}")
        self.stdout.write(f"  longer response picked {_pct(report['bias']['longer_pick_rate'])} of decisive labels")
        for name, a in report["per_annotator"].items():
            fast = "  IMPLAUSIBLY FAST" if a["implausibly_fast"] else ""
            pval = "" if a["left_pick_p_value"] is None else f" (p={a['left_pick_p_value']:.3g})"
            self.stdout.write(
                f"  {name}: {a['labels']} labels, left picked {_pct(a['left_pick_rate'])}{pval}, "
                f"longer picked {_pct(a['longer_pick_rate'])}, median {_secs(a['median_seconds'])}, "
                f"gold {_pct(a['gold_accuracy'])} of {a['gold_answers']}, "
                f"self-consistency {_pct(a.get('self_consistency'))} of {a.get('repeats', 0)} repeats{fast}"
            )
        gold = report.get("gold_agreement")
        if gold and gold.get("labels"):
            self.stdout.write(
                f"  calibration pairs (separate): {gold['labels']} answers, {_pct(gold['accuracy'])} as expected, "
                f"Fleiss' kappa {_fmt(gold['fleiss_kappa'])}"
            )
        for p in report["pairwise_cohen_kappa"]:
            kappa = "undefined" if p["kappa"] is None else f"{p['kappa']:.3f}"
            self.stdout.write(f"  kappa {p['annotator_a']} ~ {p['annotator_b']}: {kappa} on {p['shared_items']} pairs")
