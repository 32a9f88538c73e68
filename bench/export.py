"""Export throughput and memory: curate N labelled pairs and write the DPO export (JSONL, Parquet, CSV, HF folder).

    .venv/bin/python bench/export.py [--pairs 100000] [--fresh] [--config '{"near_duplicates": false}']
    .venv/bin/python bench/export.py --all-kept --pairs 1000000   # every pair survives: the write stage at 1M rows

Builds (or reuses) a PostgreSQL project with N pairs, each with two imported labels (set-based SQL), then builds one
export in this process (``export_build``: the default recipe, human majority and every step on, unless --config
says otherwise) and prints JSON with the time of each stage: reading the candidate arrays, curating (with the text
steps apart), writing JSONL + Parquet (one pass, the CSV written in the same pass is timed apart), the file hashes,
the HF folder, its zip, and the datasheet; rows/s end to end and for the JSONL + Parquet writing alone; peak RSS from
getrusage. The labels disagree on 2 pairs in 5 (a tie: the default recipe drops them, 60% of the pairs are kept);
``--unanimous`` makes both labels agree, and ``--all-kept`` (= ``--unanimous --config '{"near_duplicates": false}'``
on the database arbiter_bench_export_all) keeps every pair, so the write stage sees N rows; ``write_stage`` gives
that stage's rows/s and its peak RSS. The target (issue 5) is 1,000,000 pairs at >= 100,000 rows/s with peak RSS
< 500 MB.
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
              CASE WHEN NOT %(unanimous)s AND (p.id + r.k) %% 5 = 0 THEN 'B' ELSE 'A' END, '', '{}', now()
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
    parser.add_argument("--unanimous", action="store_true", help="both labels of every pair agree (no ties)")
    parser.add_argument("--all-kept", action="store_true", help="--unanimous, near_duplicates off: every pair kept")
    args = parser.parse_args()
    if args.all_kept:
        args.unanimous = True
        args.config = json.dumps({"near_duplicates": False, **json.loads(args.config)})
        if args.db == DB:
            args.db = DB + "_all"
    slug = "export-bench-unanimous" if args.unanimous else "export-bench"
    database_prepare(args.db, fresh=args.fresh)
    django_setup(args.db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings
    from django.db import connection

    from annotation.models import Pair, Project
    from training.export.build import export_build
    from training.models import DatasetExport
    from training.services.recipes import recipe_save

    project = Project.objects.filter(slug=slug).first()
    if project is None or Pair.objects.filter(project=project).count() != args.pairs:
        Project.objects.filter(slug=slug).delete()
        project = Project.objects.create(name="Export bench", slug=slug)
        start = time.perf_counter()
        with connection.cursor() as cursor:
            for sql in BUILD:
                cursor.execute(sql, {"project": project.pk, "pairs": args.pairs, "unanimous": args.unanimous})
        print(f"built {args.pairs} pairs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    settings.EXPORT_ROOT = settings.VAR_DIR / "bench-exports"
    recipe = recipe_save(project=project, name="bench", config=json.loads(args.config), user=None)
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
    export_build(export, timings=timings)
    total = time.perf_counter() - start
    sampling.set()
    sampler.join()
    stage_peaks, stage_starts, begin = {}, {}, start
    for name, end in timings.pop("ends").items():
        stage_peaks[name] = round(max((rss for t, rss in samples if begin <= t <= end), default=0) / 2**20)
        stage_starts[name] = round(next((rss for t, rss in samples if t >= begin), 0) / 2**20)
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
        "write_stage": {"rows": rows, "seconds": round(timings["write_s"], 2),
                        "rows_per_s_jsonl_parquet_hf": round(rows / jsonl_parquet, 1),
                        "rows_per_s_with_csv": round(rows / timings["write_s"], 1),
                        "peak_rss_mib": stage_peaks.get("write_s"), "rss_at_start_mib": stage_starts.get("write_s")},
        "note": "write_s is one pass over the texts: reading them, JSONL + Parquet (write_jsonl_parquet_s) and CSV "
                "(write_csv_s); rows_per_s_write_jsonl_parquet = rows / (write_s - write_csv_s)",
        "peak_rss_mib": round(peak_mib),
        "files": {k: v["bytes"] for k, v in export.files.items()},
        "sha256": {k: v["sha256"] for k, v in export.files.items() if k.endswith((".jsonl", ".parquet", ".csv"))},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
