"""Export throughput and memory: curate N labelled pairs and write the DPO export (JSONL, Parquet, CSV, HF folder).

    .venv/bin/python bench/export.py [--pairs 100000] [--fresh]

Builds (or reuses) a PostgreSQL project with N pairs, each with two imported labels (set-based SQL), then times, in
this process: loading the curation candidates, curating (default recipe: human majority, every step on), and
writing the files; peak RSS from getrusage. Prints JSON. The target (issue 5) is 1,000,000 pairs at >= 100,000
rows/s with peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from _env import database_prepare, django_setup, machine_info

DB = "arbiter_bench_export"

BUILD = [
    """INSERT INTO annotation_pair (project_id, external_id, prompt, prompt_is_chat, response_a, response_b, model_a,
                                   model_b, metadata, source_preference, gold, gold_explanation, content_hash,
                                   shuffle_key, open_slots, label_count, created_at)
       SELECT %(project)s, 'e' || g,
              jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                                'Question ' || g || ' about ' || md5(g::text))),
              false, repeat('Answer A ' || md5((g * 7)::text) || '. ', 1 + g %% 12),
              repeat('Answer B ' || md5((g * 13)::text) || '. ', 1 + (g * 5) %% 12), '', '', '{}', '', '', '',
              md5('pair' || g), g, 3, 0, now()
       FROM generate_series(1, %(pairs)s) g""",
    """INSERT INTO annotation_label (project_id, pair_id, external_annotator, source, choice, rationale, criteria,
                                    created_at)
       SELECT %(project)s, p.id, r.name, 'external',
              CASE WHEN (p.id + r.k) %% 5 = 0 THEN 'B' ELSE 'A' END, '', '{}', now()
       FROM annotation_pair p CROSS JOIN (VALUES ('x', 0), ('y', 1)) r(name, k)
       WHERE p.project_id = %(project)s""",
    "ANALYZE annotation_pair",
    "ANALYZE annotation_label",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    database_prepare(DB, fresh=args.fresh)
    django_setup(DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings
    from django.db import connection

    from annotation.models import Pair, Project
    from training import services
    from training.curation import RecipeConfig, curate
    from training.selectors import curation_candidates

    project = Project.objects.filter(slug="export-bench").first()
    if project is None or Pair.objects.filter(project=project).count() != args.pairs:
        Project.objects.filter(slug="export-bench").delete()
        project = Project.objects.create(name="Export bench", slug="export-bench")
        start = time.perf_counter()
        with connection.cursor() as cursor:
            for sql in BUILD:
                cursor.execute(sql, {"project": project.pk, "pairs": args.pairs})
        print(f"built {args.pairs} pairs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    settings.EXPORT_ROOT = settings.VAR_DIR / "bench-exports"
    timing = {}
    start = time.perf_counter()
    candidates = curation_candidates(project)
    timing["candidates_s"] = time.perf_counter() - start
    start = time.perf_counter()
    rows, _ = curate(candidates, RecipeConfig())
    timing["curate_s"] = time.perf_counter() - start
    del candidates, rows
    recipe = services.recipe_save(project=project, name="bench", config={}, user=None)
    start = time.perf_counter()
    export = services.export_create(project=project, recipe=recipe, fmt="dpo", user=None, run_now=True)
    timing["export_total_s"] = time.perf_counter() - start
    rows = export.rows_train + export.rows_test
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "command": " ".join(["bench/export.py", *sys.argv[1:]]), "machine": machine_info(), "pairs": args.pairs,
        "rows_exported": rows, **{k: round(v, 2) for k, v in timing.items()},
        "rows_per_s_end_to_end": round(rows / timing["export_total_s"], 1), "peak_rss_mib": round(peak_mib),
        "files": {k: v["bytes"] for k, v in export.files.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
