"""Export throughput and memory: curate N labelled pairs and write the DPO export (JSONL, Parquet, CSV, HF folder).

    .venv/bin/python bench/export.py [--pairs 100000] [--fresh] [--config '{"near_duplicates": false}']

Builds (or reuses) a PostgreSQL project with N pairs, each with two imported labels (set-based SQL), then builds one
export in this process (``export_build``: the default recipe, human majority and every step on, unless --config
says otherwise) and prints JSON with the time of each stage: reading the candidate arrays, curating (with the text
steps apart), writing JSONL + Parquet (one pass, the CSV written in the same pass is timed apart), the file hashes,
the HF folder, its zip, and the datasheet; rows/s end to end and for the JSONL + Parquet writing alone; peak RSS from
getrusage. The target (issue 5) is 1,000,000 pairs at >= 100,000 rows/s with peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

from _env import database_prepare, django_setup, machine_info

DB = "arbiter_bench_export"  # --db picks another (it must start with arbiter_bench)

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
    parser.add_argument("--db", default=DB)
    parser.add_argument("--config", default="{}", help="recipe settings as JSON (default: the default recipe)")
    parser.add_argument("--format", choices=["dpo", "kto"], default="dpo")
    args = parser.parse_args()
    database_prepare(args.db, fresh=args.fresh)
    django_setup(args.db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings
    from django.db import connection

    from annotation.models import Pair, Project
    from training import services
    from training.models import DatasetExport

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
    recipe = services.recipe_save(project=project, name="bench", config=json.loads(args.config), user=None)
    export = DatasetExport.objects.create(project=project, recipe=recipe, format=args.format)
    timings: dict = {}
    samples: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample() -> None:  # resident memory every 10 ms, to give each stage its peak
        page = os.sysconf("SC_PAGE_SIZE")
        while not sampling.is_set():
            with open("/proc/self/statm") as statm:
                samples.append((time.perf_counter(), int(statm.read().split()[1]) * page))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    services.export_build(export, timings=timings)
    total = time.perf_counter() - start
    sampling.set()
    sampler.join()
    stage_peaks, begin = {}, start
    for name, end in timings.pop("ends").items():
        stage_peaks[name] = round(max((rss for t, rss in samples if begin <= t <= end), default=0) / 2**20)
        begin = end
    export.refresh_from_db()
    rows = export.rows_train + export.rows_test
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jsonl_parquet = timings["write_s"] - timings.get("write_csv_s", 0.0)
    print(json.dumps({
        "command": " ".join(["bench/export.py", *sys.argv[1:]]), "machine": machine_info(), "pairs": args.pairs,
        "recipe": recipe.config, "rows_exported": rows, "export_total_s": round(total, 2),
        "stages_s": {k: round(v, 2) for k, v in timings.items() if isinstance(v, float)},
        "peak_rss_mib_by_stage": stage_peaks,
        "rows_per_s_end_to_end": round(rows / total, 1),
        "rows_per_s_write_jsonl_parquet": round(rows / jsonl_parquet, 1),
        "note": "write_s is one pass over the texts: reading them, JSONL + Parquet (write_jsonl_parquet_s) and CSV "
                "(write_csv_s); rows_per_s_write_jsonl_parquet = rows / (write_s - write_csv_s)",
        "peak_rss_mib": round(peak_mib),
        "files": {k: v["bytes"] for k, v in export.files.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
