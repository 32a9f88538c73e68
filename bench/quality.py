#!/usr/bin/env python
"""Quality report benchmark (issue 3). Run by hand, never as a test:

    .venv/bin/python bench/quality.py                     # 1,000,000 labels from 200 annotators (built once)
    .venv/bin/python bench/quality.py --fresh             # drop the database and build it again
    .venv/bin/python bench/quality.py --fresh --pairs 30000 --gold-pairs 100   # smoke run

It uses its own PostgreSQL database (``arbiter_quality_bench`` on 127.0.0.1:5432, trust auth), migrates it, and
builds one project with set-based SQL (``INSERT ... SELECT generate_series``), so set-up takes about a minute:

- ``--annotators`` (200) annotators, each with an accuracy, a typical time per item and, for a few, a habit (always
  picking the left side, or often the longer response);
- ``--pairs`` (300,000) regular pairs with a latent truth (stored as the pair's source preference), each labelled
  by K=3 distinct annotators drawn at random, so every two annotators share items and kappa is not trivial;
- ``--gold-pairs`` (1,000) calibration pairs, each answered by ``--gold-per-pair`` (100) annotators;
- report labels: pairs x 3 + gold pairs x gold-per-pair = 1,000,000; on top of them, labels the report must
  leave out: practice answers (5 calibration pairs x every annotator) and mirrored repeats (1% of regular labels),
  and skipped assignments without a label.

Then it times ``project_quality(project)``: the first call in this process (cold: imports, empty caches), the
median of ``--runs`` warm calls, and the split between loading the labels (``project_labels``) and computing.
Prints JSON and writes it to bench/out/quality-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time

from _env import OUT_DIR, ROOT, database_prepare, django_setup, machine_info

SLUG = "quality-bench"
DB_NAME_RE = re.compile(r"^arbiter_quality_bench[a-z0-9_]*$")
PRACTICE_PAIRS = 5
REPEAT_SHARE = 0.01
SKIPPED_SHARE = 0.02


# --------------------------------------------------------------------------------------------------------------
# Data: every statement is one INSERT ... SELECT; randomness from PostgreSQL's random() after setseed().

BUILD = [
    # Annotators, with the traits that drive their labels.
    """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                              date_joined)
       SELECT '!', false, format('qb-%%s', lpad(r::text, 3, '0')), '', '', '', false, true, now()
       FROM generate_series(0, %(annotators)s - 1) r""",
    """CREATE TEMP TABLE qb_rater AS
       SELECT r, u.id AS user_id,
              0.55 + 0.4 * random() AS accuracy,
              random() < 0.05 AS left_clicker,
              random() < 0.10 AS length_biased,
              2000 + 28000 * random() AS typical_ms
       FROM generate_series(0, %(annotators)s - 1) r
       JOIN auth_user u ON u.username = format('qb-%%s', lpad(r::text, 3, '0'))""",
    """INSERT INTO annotation_membership (project_id, user_id, role, paused_at, paused_reason, created_at)
       SELECT %(project)s, user_id, 'annotator', CASE WHEN r < 2 THEN now() END,
              CASE WHEN r < 2 THEN 'Calibration accuracy 40%% over the last 20 calibration pairs' ELSE '' END, now()
       FROM qb_rater""",
    # Pairs: regular ones (truth in source_preference), then calibration ones (gold) and practice ones.
    """INSERT INTO annotation_pair (project_id, external_id, prompt, prompt_is_chat, response_a, response_b, model_a,
                                   model_b, metadata, source_preference, gold, gold_explanation, content_hash,
                                   shuffle_key, open_slots, label_count, created_at)
       SELECT %(project)s, 'q' || g, jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || g)),
              false, left(repeat(md5(g::text), 80), 20 + (random() * 2000)::int),
              left(repeat(md5((-g)::text), 80), 20 + (random() * 2000)::int), 'model-x', 'model-y', '{}',
              CASE WHEN t < 0.45 THEN 'A' WHEN t < 0.9 THEN 'B' ELSE 'tie' END,
              CASE WHEN g > %(pairs)s THEN CASE WHEN t < 0.5 THEN 'A' ELSE 'B' END ELSE '' END, '', md5('q' || g),
              (random() * 2e9)::int - 1000000000, 0,
              CASE WHEN g > %(pairs)s THEN 0 ELSE 3 END, now()
       FROM (SELECT g, random() AS t FROM generate_series(1, %(pairs)s + %(gold_pairs)s + %(practice_pairs)s) g) s""",
    """CREATE TEMP TABLE qb_pair AS
       SELECT id, (substr(external_id, 2))::int AS g, source_preference AS truth, gold,
              char_length(response_a) > char_length(response_b) AS a_longer
       FROM annotation_pair WHERE project_id = %(project)s""",
    # Regular assignments: three distinct annotators per pair, drawn at random; for a few pairs a fourth one who
    # skipped it (an assignment without a label).
    """CREATE TEMP TABLE qb_regular AS
       SELECT p.id AS pair_id, p.g, (d.a1 + s.off) %% %(annotators)s AS r, s.skip
       FROM qb_pair p
       CROSS JOIN LATERAL (SELECT floor(random() * %(annotators)s)::int AS a1, d1, d2, d3, skip
                           FROM (SELECT 1 + floor(random() * (%(annotators)s - 1))::int AS d1,
                                        1 + floor(random() * (%(annotators)s - 2))::int AS d2_,
                                        1 + floor(random() * (%(annotators)s - 3))::int AS d3_,
                                        random() < %(skipped_share)s AS skip
                                 WHERE p.id IS NOT NULL) r1
                           CROSS JOIN LATERAL (SELECT d2_ + (d2_ >= d1)::int AS d2) r2
                           CROSS JOIN LATERAL (SELECT d3_ + (d3_ >= least(d1, d2))::int AS d3a) r3
                           CROSS JOIN LATERAL (SELECT d3a + (d3a >= greatest(d1, d2))::int AS d3) r4) d
       CROSS JOIN LATERAL (VALUES (0, false), (d.d1, false), (d.d2, false), (d.d3, true)) s(off, skip)
       WHERE p.g <= %(pairs)s AND (NOT s.skip OR d.skip)""",
    # Calibration answers: gold-per-pair consecutive annotators from a per-pair start; practice: everybody.
    """CREATE TEMP TABLE qb_other AS
       SELECT p.id AS pair_id, p.g, (p.g * 7 + j) %% %(annotators)s AS r, false AS skip, 'gold' AS kind
       FROM qb_pair p CROSS JOIN generate_series(0, %(gold_per_pair)s - 1) j
       WHERE p.g > %(pairs)s AND p.g <= %(pairs)s + %(gold_pairs)s
       UNION ALL
       SELECT p.id, p.g, j, false, 'practice' FROM qb_pair p CROSS JOIN generate_series(0, %(annotators)s - 1) j
       WHERE p.g > %(pairs)s + %(gold_pairs)s""",
    """INSERT INTO annotation_assignment (public_id, project_id, pair_id, annotator_id, kind, state, left_is_a,
                                         served_at, expires_at, finished_at)
       SELECT gen_random_uuid(), %(project)s, x.pair_id, q.user_id, x.kind,
              CASE WHEN x.skip THEN 'skipped' ELSE 'done' END, random() < 0.5,
              ts, ts + interval '15 minutes', ts + interval '1 minute'
       FROM (SELECT pair_id, g, r, skip, 'regular' AS kind FROM qb_regular UNION ALL SELECT * FROM qb_other) x
       JOIN qb_rater q ON q.r = x.r
       CROSS JOIN LATERAL (SELECT now() - interval '30 days' * random() AS ts WHERE x.g IS NOT NULL) t""",
    # Mirrored repeats of a share of the regular assignments, served later with sides swapped.
    """INSERT INTO annotation_assignment (public_id, project_id, pair_id, annotator_id, kind, state, left_is_a,
                                         served_at, expires_at, finished_at)
       SELECT gen_random_uuid(), project_id, pair_id, annotator_id, 'repeat', 'done', NOT left_is_a,
              served_at + interval '1 day', expires_at + interval '1 day', finished_at + interval '1 day'
       FROM annotation_assignment
       WHERE project_id = %(project)s AND kind = 'regular' AND state = 'done' AND random() < %(repeat_share)s""",
    # One label per done assignment, from the annotator's traits and the pair's latent truth (or expected answer).
    """INSERT INTO annotation_label (project_id, pair_id, assignment_id, annotator_id, external_annotator, source,
                                    choice, left_is_a, rationale, criteria, time_on_item_ms, created_at)
       SELECT a.project_id, a.pair_id, a.id, a.annotator_id, '', 'human',
              CASE
                WHEN q.left_clicker THEN CASE WHEN a.left_is_a THEN 'A' ELSE 'B' END
                WHEN q.length_biased AND u.u1 < 0.3 THEN CASE WHEN p.a_longer THEN 'A' ELSE 'B' END
                WHEN u.u2 < q.accuracy THEN CASE WHEN p.gold <> '' THEN p.gold ELSE p.truth END
                ELSE (ARRAY['A', 'B', 'tie', 'both_bad'])[1 + floor(u.u3 * 4)::int]
              END,
              a.left_is_a, '', '{}', (q.typical_ms * (0.3 + 1.4 * u.u4))::int, a.finished_at
       FROM annotation_assignment a
       JOIN qb_rater q ON q.user_id = a.annotator_id
       JOIN qb_pair p ON p.id = a.pair_id
       CROSS JOIN LATERAL (SELECT random() AS u1, random() AS u2, random() AS u3, random() AS u4
                           WHERE a.id IS NOT NULL) u
       WHERE a.project_id = %(project)s AND a.state = 'done'""",
]


def project_build(args) -> dict:
    """Build the benchmark project (or reuse the one a previous run built with the same sizes)."""
    from django.db import connection, transaction

    from annotation.models import Label, Project

    params = {
        "annotators": args.annotators,
        "pairs": args.pairs,
        "gold_pairs": args.gold_pairs,
        "gold_per_pair": args.gold_per_pair,
        "practice_pairs": PRACTICE_PAIRS,
        "repeat_share": REPEAT_SHARE,
        "skipped_share": SKIPPED_SHARE,
        "seed": args.seed,
    }
    description = json.dumps(params, sort_keys=True)
    project = Project.objects.filter(slug=SLUG).first()
    if project is not None:
        if project.description != description:
            raise SystemExit(f"project {SLUG!r} was built with {project.description}; use --fresh to rebuild it")
        return {"built": False, "seconds": 0.0, "project": project}
    started = time.perf_counter()
    with transaction.atomic():
        project = Project.objects.create(name="Quality benchmark", slug=SLUG, description=description, overlap_k=3)
        with connection.cursor() as cursor:
            cursor.execute("SELECT setseed(%s)", [args.seed])
            for statement in BUILD:
                cursor.execute(statement, {**params, "project": project.pk})
    with connection.cursor() as cursor:  # autovacuum is off on the development server
        for table in ("auth_user", "annotation_membership", "annotation_pair", "annotation_assignment",
                      "annotation_label"):  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    seconds = time.perf_counter() - started
    print(f"built {Label.objects.filter(project=project).count():,} label rows in {seconds:.1f} s", flush=True)
    return {"built": True, "seconds": round(seconds, 1), "project": project}


def data_summary(project) -> dict:
    from django.db.models import Count

    from annotation.models import Label, Pair

    kinds = dict(
        Label.objects.filter(project=project).values_list("assignment__kind").annotate(n=Count("pk")).order_by()
    )
    return {
        "label_rows": sum(kinds.values()),
        "labels_by_kind": kinds,
        "report_labels": kinds.get("regular", 0) + kinds.get("gold", 0),
        "pairs": Pair.objects.filter(project=project).count(),
        "gold_pairs": Pair.objects.filter(project=project).exclude(gold="").count(),
        "annotators": Label.objects.filter(project=project).values("annotator_id").distinct().count(),
    }


# --------------------------------------------------------------------------------------------------------------
# Timing


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(project, runs: int, n_boot: int) -> dict:
    from annotation.quality.agreement import agreement_summary
    from annotation.quality.loading import project_labels
    from annotation.selectors import _label_matrix, project_bias, project_gold, project_quality

    cold, report = _timed(project_quality, project, n_boot=n_boot)
    warm = [_timed(project_quality, project, n_boot=n_boot)[0] for _ in range(runs)]
    load = [_timed(project_labels, project)[0] for _ in range(runs)]
    labels = project_labels(project)
    parts: dict[str, list[float]] = {"matrix": [], "agreement": [], "bias": [], "gold": []}
    for _ in range(runs):
        seconds, (matrix, _) = _timed(_label_matrix, project, "with_ties", labels=labels)
        parts["matrix"].append(seconds)
        parts["agreement"].append(_timed(agreement_summary, matrix, n_boot=n_boot)[0])
        parts["bias"].append(_timed(project_bias, project, labels=labels)[0])
        parts["gold"].append(_timed(project_gold, project, labels=labels)[0])
    return {
        "n_boot": n_boot,
        "runs": runs,
        "cold_seconds": round(cold, 3),
        "warm_seconds": [round(s, 3) for s in warm],
        "warm_median_seconds": _median(warm),
        "load_median_seconds": _median(load),
        "compute_median_seconds": round(_median(warm) - _median(load), 3),
        "compute_parts_median_seconds": {name: _median(values) for name, values in parts.items()},
        "report": {
            "labels": report["labels"],
            "items_with_two_or_more_labels": report["items_with_two_or_more_labels"],
            "annotators": report["annotators"],
            "annotator_pairs_with_kappa": len(report["pairwise_cohen_kappa"]),
            "fleiss_kappa": report["fleiss_kappa"],
            "krippendorff_alpha": report["krippendorff_alpha"],
            "percent_agreement": report["percent_agreement"],
            "gold_agreement": {k: report["gold_agreement"][k] for k in ("labels", "accuracy", "fleiss_kappa")},
            "bias": report["bias"],
            "implausibly_fast": sum(a["implausibly_fast"] for a in report["per_annotator"].values()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="arbiter_quality_bench")
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the benchmark database")
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=300_000, help="regular pairs, K=3 labels each")
    parser.add_argument("--gold-pairs", type=int, default=1_000)
    parser.add_argument("--gold-per-pair", type=int, default=100)
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL setseed() for the data")
    parser.add_argument("--runs", type=int, default=5, help="warm calls to time")
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples (the report's default)")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    if args.gold_per_pair > args.annotators or args.annotators < 3:
        raise SystemExit("need at least 3 annotators and no more answers per calibration pair than annotators")

    created = database_prepare(args.db, args.fresh, name_re=DB_NAME_RE)
    django_setup(args.db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    result: dict = {"run": run_id, "argv": sys.argv[1:], "database_created": created, "machine": machine_info()}
    build = project_build(args)
    project = build.pop("project")
    result["build"] = build
    result["data"] = data_summary(project)
    print(json.dumps(result["data"]), flush=True)
    if not args.build_only:
        result["timing"] = measure(project, args.runs, args.bootstrap)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_path = OUT_DIR / f"quality-{run_id}.json"
    out_path.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    print(f"\nresults: {out_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
