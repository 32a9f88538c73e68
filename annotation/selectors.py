"""Selectors read. Every function here is side-effect free."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Q, Sum

from .models import Assignment, GuidelineVersion, ImportBatch, Label, Membership, Pair, Project
from .services.calibration import ROLLING_GOLD_WINDOW


def guidelines_current(project: Project) -> GuidelineVersion | None:
    return GuidelineVersion.objects.filter(project=project).order_by("-version").first()


@dataclass
class AnnotatorProgress:
    user_id: int
    username: str
    role: str
    labels: int = 0
    skips: int = 0
    active: int = 0
    median_seconds: float | None = None


@dataclass
class ProjectProgress:
    pairs: int
    labels: int
    pairs_complete: int
    pairs_started: int
    target_labels: int
    external_labels: int
    annotators: list[AnnotatorProgress] = field(default_factory=list)

    @property
    def percent_complete(self) -> float:
        return 100.0 * self.pairs_complete / self.pairs if self.pairs else 0.0


def project_progress(project: Project) -> ProjectProgress:
    """Pairs, labels, pairs complete at K, and per-annotator counts with median time on item."""
    k = project.overlap_k
    totals = Pair.objects.filter(project=project).aggregate(
        pairs=Count("pk"),
        labels=Sum("label_count"),
        complete=Count("pk", filter=Q(label_count__gte=k)),
        started=Count("pk", filter=Q(label_count__gt=0)),
    )
    external = Label.objects.filter(project=project, source=Label.Source.EXTERNAL).count()
    people: dict[int, AnnotatorProgress] = {}
    for user_id, username, role in Membership.objects.filter(project=project).values_list(
        "user_id", "user__username", "role"
    ):
        people[user_id] = AnnotatorProgress(user_id=user_id, username=username, role=role)
    states = (
        Assignment.objects.filter(project=project)
        .values("annotator_id", "annotator__username", "state")
        .annotate(n=Count("pk"))
    )
    for row in states:
        person = people.setdefault(
            row["annotator_id"],
            AnnotatorProgress(user_id=row["annotator_id"], username=row["annotator__username"], role="staff"),
        )
        if row["state"] == Assignment.State.DONE:
            person.labels = row["n"]
        elif row["state"] == Assignment.State.SKIPPED:
            person.skips = row["n"]
        elif row["state"] == Assignment.State.ACTIVE:
            person.active = row["n"]
    times: dict[int, list[int]] = defaultdict(list)
    for annotator_id, ms in Label.objects.filter(
        project=project, source=Label.Source.HUMAN, time_on_item_ms__isnull=False
    ).values_list("annotator_id", "time_on_item_ms"):
        times[annotator_id].append(ms)
    for annotator_id, values in times.items():
        if annotator_id in people:
            people[annotator_id].median_seconds = statistics.median(values) / 1000
    return ProjectProgress(
        pairs=totals["pairs"] or 0,
        labels=totals["labels"] or 0,
        pairs_complete=totals["complete"] or 0,
        pairs_started=totals["started"] or 0,
        target_labels=(totals["pairs"] or 0) * k,
        external_labels=external,
        annotators=sorted(people.values(), key=lambda p: (-p.labels, p.username)),
    )


def annotator_counts(project: Project, user) -> dict:
    """What an annotator may know about their own progress (nothing about anyone else)."""
    done = Assignment.objects.filter(project=project, annotator=user, state=Assignment.State.DONE).count()
    return {"done": done}


def members_of(project: Project):
    return Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")


def imports_of(project: Project):
    return ImportBatch.objects.filter(project=project).select_related("created_by")[:50]


def _label_matrix(project: Project, space: str, *, without_paused: bool = False):
    """Every label of the project (human and imported) as a rating matrix. Annotators are named by username;
    labels imported with pairs by ``imported:<annotator>``. ``without_paused`` leaves out paused annotators."""
    from .quality.agreement import rating_matrix

    # Calibration (gold) pairs are reported separately (project_gold), not mixed into agreement and consensus.
    labels = Label.objects.filter(project=project, pair__gold="")
    if without_paused:
        paused = Membership.objects.filter(project=project, paused_at__isnull=False).values_list("user_id", flat=True)
        labels = labels.exclude(annotator_id__in=list(paused))
    rows = labels.values_list("pair_id", "annotator__username", "external_annotator", "choice")
    items, raters, choices = [], [], []
    for pair_id, username, external, choice in rows:
        items.append(pair_id)
        raters.append(username if username is not None else f"imported:{external}")
        choices.append(choice)
    return rating_matrix(items, raters, choices, space=space), len(items)


def project_agreement(project: Project, *, space: str = "with_ties", n_boot: int = 500) -> dict:
    """Agreement figures over every label of the project; see annotation/quality/agreement.py."""
    from .quality.agreement import agreement_summary

    matrix, n_labels = _label_matrix(project, space)
    return {"label_space": space, "labels": n_labels, **agreement_summary(matrix, n_boot=n_boot)}


def pair_consensus(project: Project) -> list[dict]:
    """Consensus for every labelled pair (majority vote, vote margin, agreement and Dawid–Skene P(A better)), from
    human and imported labels, leaving out paused annotators; see annotation/quality/consensus.py for the policy.
    Curation reads this."""
    from .quality.consensus import item_consensus

    matrix, _ = _label_matrix(project, "with_ties", without_paused=True)
    return item_consensus(matrix)


def project_bias(project: Project) -> dict:
    """Side, length and speed audits per annotator; see annotation/quality/bias.py."""
    from django.db.models.functions import Length

    from .quality.bias import bias_report

    rows = (
        Label.objects.filter(project=project)
        .annotate(len_a=Length("pair__response_a"), len_b=Length("pair__response_b"))
        .values_list(
            "annotator__username", "external_annotator", "choice", "left_is_a", "len_a", "len_b", "time_on_item_ms"
        )  # fmt: skip
    )
    return bias_report(
        [(u if u is not None else f"imported:{e}", c, side, la, lb, ms) for u, e, c, side, la, lb, ms in rows]
    )


def project_gold(project: Project) -> dict[str, dict]:
    """Per annotator: calibration answers, accuracy against the expected answers, and accuracy over the last
    ROLLING_GOLD_WINDOW of them (drift shows as the rolling figure falling below the overall one)."""
    rows = (
        Label.objects.filter(project=project, assignment__kind=Assignment.Kind.GOLD)
        .order_by("created_at", "pk")
        .values_list("annotator__username", "choice", "pair__gold")
    )
    hits: dict[str, list[bool]] = defaultdict(list)
    for username, choice, expected in rows:
        hits[username].append(choice == expected)
    out = {}
    for name, h in hits.items():
        # accuracy over the window ending at each answer, oldest first: the drift chart
        windows = [h[max(0, i + 1 - ROLLING_GOLD_WINDOW) : i + 1] for i in range(len(h))]
        series = [sum(w) / len(w) for w in windows]
        out[name] = {
            "gold_answers": len(h),
            "gold_accuracy": sum(h) / len(h),
            "rolling_gold_accuracy": series[-1],
            "rolling_series": series,
        }
    return out


def project_quality(project: Project, *, space: str = "with_ties", n_boot: int = 500) -> dict:
    """The quality report: agreement with CIs, pairwise kappas and per-annotator audits, in one dict."""
    report = project_agreement(project, space=space, n_boot=n_boot)
    bias = project_bias(project)
    report["bias"] = bias["project"]
    gold = project_gold(project)
    no_gold = {"gold_answers": 0, "gold_accuracy": None, "rolling_gold_accuracy": None, "rolling_series": []}
    paused = dict(
        Membership.objects.filter(project=project, paused_at__isnull=False).values_list(
            "user__username", "paused_reason"
        )
    )
    report["per_annotator"] = {
        name: {
            **audit,
            "mean_kappa": report["mean_kappa_by_annotator"].get(name),
            **gold.get(name, no_gold),
            "paused": name in paused,
            "paused_reason": paused.get(name, ""),
        }
        for name, audit in bias["annotators"].items()
    }
    return report


PAIRS_PER_PAGE = 50


def pairs_of(project: Project, *, gold: str = "", query: str = ""):
    """Pairs for the lead's pair browser, newest first. ``gold``: "yes" (calibration pairs only), "no" (the rest)
    or "" (all); ``query`` matches the external id exactly or a prompt/response substring."""
    pairs = Pair.objects.filter(project=project).only(
        "pk", "external_id", "prompt", "gold", "label_count", "open_slots", "created_at"
    )
    if gold == "yes":
        pairs = pairs.exclude(gold="")
    elif gold == "no":
        pairs = pairs.filter(gold="")
    if query:
        pairs = pairs.filter(
            Q(external_id=query)
            | Q(response_a__icontains=query)
            | Q(response_b__icontains=query)
            | Q(prompt__icontains=query)
        )
    return pairs.order_by("-pk")


def pair_labels(pair: Pair):
    """Every label of a pair with who gave it and under which kind of assignment (leads only)."""
    return (
        Label.objects.filter(pair=pair)
        .select_related("annotator", "assignment")
        .only(
            "choice",
            "left_is_a",
            "strength",
            "rationale",
            "source",
            "external_annotator",
            "time_on_item_ms",
            "created_at",
            "annotator__username",
            "assignment__kind",
        )  # fmt: skip
        .order_by("created_at", "pk")
    )


_SELF_CONSISTENCY_SQL = """
SELECT u.username, count(*),
       sum(CASE WHEN r.choice = o.choice THEN 1 ELSE 0 END),
       sum(CASE WHEN r.choice IN ('A', 'B') AND o.choice IN ('A', 'B')
                 AND ((r.choice = 'A') = r.left_is_a) = ((o.choice = 'A') = o.left_is_a) THEN 1 ELSE 0 END)
FROM {label} r
JOIN {assignment} ra ON ra.id = r.assignment_id AND ra.kind = 'repeat'
JOIN {assignment} oa ON oa.pair_id = ra.pair_id AND oa.annotator_id = ra.annotator_id AND oa.kind = 'regular'
JOIN {label} o ON o.assignment_id = oa.id
JOIN {user} u ON u.id = r.annotator_id
WHERE r.project_id = %s
GROUP BY u.username
"""


def project_self_consistency(project: Project) -> dict[str, dict]:
    """Per annotator, from mirrored repeats (the same pair again later, sides swapped): how many repeats were
    answered, how many gave the same answer in A/B terms as the first time (``self_consistency`` is that share),
    and how many decisive answers picked the same screen side both times (``same_side``: with sides swapped, an
    annotator who follows position rather than content does this)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    sql = _SELF_CONSISTENCY_SQL.format(
        label=Label._meta.db_table, assignment=Assignment._meta.db_table, user=get_user_model()._meta.db_table
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk])
        rows = cursor.fetchall()
    return {
        name: {"repeats": n, "consistent": int(same), "self_consistency": int(same) / n, "same_side": int(side)}
        for name, n, same, side in rows
    }
