"""Selectors read. Every function here is side-effect free.

The quality figures import annotation.quality inside the functions that need it: it loads scipy, scikit-learn and
krippendorff (~1 s), which every other page and every worker would otherwise pay for at start-up."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .models import ROLLING_GOLD_WINDOW, Assignment, GuidelineVersion, ImportBatch, Label, Membership, Pair, Project


def guidelines_current(project: Project) -> GuidelineVersion | None:
    return GuidelineVersion.objects.filter(project=project).order_by("-version").first()


def guideline_history(project: Project):
    """Every guideline version of the project, newest first, with its author."""
    return GuidelineVersion.objects.filter(project=project).select_related("created_by").order_by("-version")


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
    # pairs with an open slot this annotator has not been served (calibration and repeats come on top)
    left = (Pair.objects.filter(project=project, gold="", open_slots__gt=0)
            .exclude(assignments__annotator=user).count())  # fmt: skip
    return {"done": done, "left": left}


def members_of(project: Project, *, with_label_counts: bool = False):
    """The project's memberships with their users. ``with_label_counts`` adds ``labels``: each member's labels in
    the project (one subquery on the label_annotator_idx index, not a join that multiplies rows)."""
    members = Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")
    if with_label_counts:
        counted = (Label.objects.filter(project=project, annotator_id=OuterRef("user_id"))
                   .values("annotator_id").annotate(n=Count("pk")).values("n"))  # fmt: skip
        members = members.annotate(labels=Coalesce(Subquery(counted), Value(0)))
    return members


def user_to_add(*, username: str = "", email: str = ""):
    """The active user a lead names to add to a project, by username or by e-mail (case-insensitive); None when
    there is none. Several active users sharing an e-mail address is None too: the lead must give the username."""
    if not (username or email):
        return None
    users = get_user_model().objects.filter(is_active=True)
    found = list(users.filter(username=username)[:1] if username else users.filter(email__iexact=email)[:2])
    return found[0] if len(found) == 1 else None


def imports_of(project: Project):
    return ImportBatch.objects.filter(project=project).select_related("created_by")[:50]


def _label_matrix(project: Project, space: str, *, without_paused: bool = False, labels=None):
    """The labels agreement and consensus are computed on, as a rating matrix, and how many there are: imported
    labels and regular human labels on pairs that are not calibration pairs. Calibration answers are reported
    separately (project_gold, and ``gold_agreement`` in project_quality); practice answers and mirrored repeats
    never count. Annotators are named by username; labels imported with pairs by ``imported:<annotator>``.
    ``without_paused`` leaves out paused annotators. ``labels``: the project's labels if already loaded
    (annotation/quality/loading.py)."""
    import numpy as np

    from .quality.agreement import rating_matrix_from_codes
    from .quality.loading import KIND_EXTERNAL, KIND_REGULAR, NO_GOLD, project_labels

    labels = project_labels(project) if labels is None else labels
    keep = (labels.pair_gold == NO_GOLD) & ((labels.kind == KIND_EXTERNAL) | (labels.kind == KIND_REGULAR))
    if without_paused:
        paused = Membership.objects.filter(project=project, paused_at__isnull=False).values_list("user_id", flat=True)
        keep &= ~np.isin(labels.rater_user_ids, list(paused))[labels.rater]
    matrix = rating_matrix_from_codes(
        labels.pair_id[keep], labels.rater[keep], labels.raters, labels.choice[keep], space=space
    )
    return matrix, int(keep.sum())


def project_agreement(project: Project, *, space: str = "with_ties", n_boot: int = 500, labels=None) -> dict:
    """Agreement figures over the labels ``_label_matrix`` selects; see annotation/quality/agreement.py."""
    from .quality.agreement import agreement_summary

    matrix, n_labels = _label_matrix(project, space, labels=labels)
    return {"label_space": space, "labels": n_labels, **agreement_summary(matrix, n_boot=n_boot)}


AGREEMENT_PART_PAIRS = 200_000  # pairs whose labels project_agreement_figures reads at a time


def pair_id_ranges(project: Project, size: int) -> list[tuple[int, int]]:
    """Inclusive pair id ranges covering the project's pairs, about ``size`` pairs each, in id order."""
    span = Pair.objects.filter(project=project).aggregate(lo=Min("pk"), hi=Max("pk"), n=Count("pk"))
    if not span["n"]:
        return []
    parts = -(-span["n"] // size)
    width = -(-(span["hi"] - span["lo"] + 1) // parts)
    return [(lo, min(lo + width - 1, span["hi"])) for lo in range(span["lo"], span["hi"] + 1, width)]


def project_agreement_figures(project: Project, *, space: str = "with_ties", n_boot: int = 500,
                              part_pairs: int = AGREEMENT_PART_PAIRS) -> dict:  # fmt: skip
    """The project-level figures of ``project_agreement`` (label space, labels, Fleiss' kappa, Krippendorff's alpha
    and percent agreement with their intervals; the same numbers), without the pairwise kappas, reading the labels
    ``part_pairs`` pairs at a time: every figure depends on the labels only through each pair's category counts, so
    memory holds one part's labels and the counts, not every label (the export datasheet at millions of labels)."""
    import numpy as np

    from .quality.agreement import LABEL_SPACES, category_counts, figures_from_counts
    from .quality.loading import project_labels

    parts, n_labels = [np.zeros((0, 1 + max(LABEL_SPACES[space].values())), dtype=np.int64)], 0
    for lo, hi in pair_id_ranges(project, part_pairs):
        matrix, labels = _label_matrix(project, space, labels=project_labels(project, pairs=(lo, hi)))
        counts = category_counts(matrix)
        parts.append(counts[counts.sum(axis=1) >= 2])
        n_labels += labels
        del matrix, counts
    return {"label_space": space, "labels": n_labels, **figures_from_counts(np.concatenate(parts), n_boot=n_boot)}


def pair_consensus(project: Project) -> list[dict]:
    """Consensus for every labelled pair (majority vote, vote margin, agreement and Dawid–Skene P(A better)), from
    human and imported labels, leaving out paused annotators; see annotation/quality/consensus.py for the policy.
    Curation reads this."""
    from .quality.consensus import item_consensus

    matrix, _ = _label_matrix(project, "with_ties", without_paused=True)
    return item_consensus(matrix)


def project_bias(project: Project, *, labels=None) -> dict:
    """Side, length and speed audits per annotator, over imported labels and human labels of kind regular or gold
    (not practice answers or mirrored repeats); see annotation/quality/bias.py."""
    from .quality.bias import bias_report_from_codes
    from .quality.loading import project_labels

    labels = project_labels(project) if labels is None else labels
    return bias_report_from_codes(
        raters=labels.raters,
        rater=labels.rater,
        choice=labels.choice,
        left_is_a=labels.left_is_a,
        longer=labels.longer,
        time_ms=labels.time_ms,
    )


def project_gold(project: Project, *, labels=None, series_points: int = 100) -> dict[str, dict]:
    """Per annotator: calibration answers (kind gold; practice answers come with feedback and do not count),
    accuracy against the expected answers, and accuracy over the last ROLLING_GOLD_WINDOW of them (drift shows as
    the rolling figure falling below the overall one). ``rolling_series`` is that rolling accuracy after each
    answer, oldest first, cut to the last ``series_points`` answers; ``rolling_series_start`` is the index of its
    first point among all of the annotator's answers."""
    import numpy as np

    from .quality.loading import project_labels

    labels = project_labels(project) if labels is None else labels
    # Every annotator's answers together, oldest first (the stable sort keeps the time order within an annotator).
    answers = labels.gold_sequence[np.argsort(labels.rater[labels.gold_sequence], kind="stable")]
    rater = labels.rater[answers]
    answered = np.bincount(rater, minlength=len(labels.raters))
    first_answer = np.r_[0, np.cumsum(answered)[:-1]]
    hits_before = np.r_[0, np.cumsum(labels.choice[answers] == labels.pair_gold[answers])]
    # Rolling accuracy after each answer: hits in the window ending there (at most ROLLING_GOLD_WINDOW answers, all
    # the annotator's) over its length, from one cumulative sum over all answers.
    end = np.arange(1, len(answers) + 1)
    start = np.maximum(end - ROLLING_GOLD_WINDOW, first_answer[rater])
    series = (hits_before[end] - hits_before[start]) / (end - start)
    out = {}
    for r in sorted(np.flatnonzero(answered).tolist(), key=labels.raters.__getitem__):
        first, n = int(first_answer[r]), int(answered[r])
        shown = max(n - series_points, 0)
        out[labels.raters[r]] = {
            "gold_answers": n,
            "gold_accuracy": int(hits_before[first + n] - hits_before[first]) / n,
            "rolling_gold_accuracy": float(series[first + n - 1]),
            "rolling_series": series[first + shown : first + n].tolist(),
            "rolling_series_start": shown,
        }
    return out


def project_quality(project: Project, *, space: str = "with_ties", n_boot: int = 500) -> dict:
    """The quality report in one dict: agreement with CIs and pairwise kappas over regular labels, the same figures
    over calibration answers on calibration pairs with their accuracy (``gold_agreement``: the share of answers
    equal to the expected one, all annotators together), and per-annotator audits. The labels are read once."""
    from .quality.agreement import agreement_summary, rating_matrix_from_codes
    from .quality.loading import KIND_GOLD, NO_GOLD, project_labels

    labels = project_labels(project)
    report = project_agreement(project, space=space, n_boot=n_boot, labels=labels)
    bias = project_bias(project, labels=labels)
    report["bias"] = bias["project"]
    answers = (labels.kind == KIND_GOLD) & (labels.pair_gold != NO_GOLD)
    gold_matrix = rating_matrix_from_codes(
        labels.pair_id[answers], labels.rater[answers], labels.raters, labels.choice[answers], space=space
    )
    correct = labels.choice[answers] == labels.pair_gold[answers]
    report["gold_agreement"] = {
        "labels": int(answers.sum()),
        "accuracy": float(correct.mean()) if len(correct) else None,
        **agreement_summary(gold_matrix, n_boot=n_boot),
    }
    gold = project_gold(project, labels=labels)
    no_gold = {"gold_answers": 0, "gold_accuracy": None, "rolling_gold_accuracy": None, "rolling_series": [],
               "rolling_series_start": 0}  # fmt: skip
    paused = dict(
        Membership.objects.filter(project=project, paused_at__isnull=False).values_list(
            "user__username", "paused_reason"
        )
    )
    repeats = project_self_consistency(project)
    no_repeats = {"repeats": 0, "consistent": 0, "self_consistency": None, "same_side": 0}
    report["per_annotator"] = {
        name: {
            **audit,
            "mean_kappa": report["mean_kappa_by_annotator"].get(name),
            **gold.get(name, no_gold),
            **repeats.get(name, no_repeats),
            "paused": name in paused,
            "paused_reason": paused.get(name, ""),
        }
        for name, audit in bias["annotators"].items()
    }
    return report


PAIRS_PER_PAGE = 50


def pairs_of(project: Project, *, gold: str = "", query: str = "", labelled: bool | None = None,
             complete: bool | None = None, source: str = "", judged: bool | uuid.UUID | None = None):  # fmt: skip
    """Pairs for the lead's pair browser and the API's pair list, newest first. ``gold``: "yes" (calibration pairs
    only), "no" (the rest) or "" (all); ``query`` matches the external id exactly or a prompt/response substring.
    ``labelled``: with at least one label, or none; ``complete``: with at least K labels (as project_progress
    counts), or fewer; ``source``: an import batch's public id or a ``source`` in the pairs' metadata;
    ``judged``: True (a verdict from any judge), False (none) or a judge's public id. None or "" leaves a filter
    out."""
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
    if labelled is not None:
        pairs = pairs.filter(label_count__gt=0) if labelled else pairs.filter(label_count=0)
    if complete is not None:
        at_k = Q(label_count__gte=project.overlap_k)
        pairs = pairs.filter(at_k) if complete else pairs.exclude(at_k)
    if source:
        from_source = Q(metadata__source=source)
        try:
            from_source |= Q(import_batch__public_id=uuid.UUID(source))
        except ValueError:
            pass  # not a batch id: a metadata source only
        pairs = pairs.filter(from_source)
    if judged is not None:
        # judging's Verdict through the reverse relation: judging imports annotation, not the other way round
        verdicts = Pair._meta.get_field("verdicts").related_model.objects.filter(pair=OuterRef("pk"))
        if isinstance(judged, uuid.UUID):
            verdicts = verdicts.filter(judge__public_id=judged)
        pairs = pairs.filter(~Exists(verdicts) if judged is False else Exists(verdicts))
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
            "criteria",
            "created_at",
            "annotator__username",
            "assignment__kind",
        )  # fmt: skip
        .order_by("created_at", "pk")
    )


def pair_verdicts(pair: Pair):
    """Every judge verdict on a pair (leads only), judge by judge, each prompt version's orders together."""
    return pair.verdicts.select_related("judge", "prompt_version").order_by(
        "judge__name", "prompt_version__version", "order"
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
