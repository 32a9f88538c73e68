"""Generation pipeline throughput against a bare asyncio loop, on the same real server and the same requests.

    .venv/bin/python bench/generation.py [--prompts 12] [--concurrency 2] [--rounds 2] [--max-tokens 32]

Starts llama.cpp's OpenAI-compatible server (SmolLM2-135M, `make judge-server`) and, for each round:
1. bare: an asyncio loop with ``openai.AsyncOpenAI`` sends the exact requests the pipeline would send (every prompt
   at temperatures 0.3 and 1.0, two samples each, with the same seeds, top_p and max_tokens), ``concurrency`` at a
   time;
2. pipeline: ``generation_run_start`` with the same prompts and plan, sampled by a real Celery worker (Redis broker,
   PostgreSQL) through the cache, the rate limiter, the flags and the database, timed from start to the run's end.
Each round has its own system prompt, so the cache never answers for it. Throughput is compared as requests per
second (the server answers one request at a time: both sides are bound by it; the question is what the pipeline
adds). Finally a re-run of the last plan counts the requests the server receives (expected: 0). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid

from _env import machine_info
from judge import REQUEST_LINE, bench_setup, start_server, start_worker

DB = "arbiter_bench_generation"
BROKER = "redis://127.0.0.1:6379/12"
TEMPERATURES = [0.3, 1.0]
SAMPLES = 2


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_loop(url: str, requests: list[dict], *, concurrency: int) -> tuple[float, int]:
    """The same requests without Celery, the database or the cache. Returns (seconds, output tokens)."""
    import openai

    tokens = 0

    async def main() -> None:
        nonlocal tokens
        client = openai.AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=3)
        queue: asyncio.Queue = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)

        async def worker() -> None:
            nonlocal tokens
            while not queue.empty():
                response = await client.chat.completions.create(model="smollm2", **queue.get_nowait())
                tokens += response.usage.completion_tokens if response.usage else 0

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    out = bench_setup(DB, BROKER)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.services.projects import project_create
    from generation.imports import prompts_import
    from generation.models import GenerationRun, Prompt
    from generation.plan import messages_for, plan_clean, slots
    from generation.services import generation_run_start, generator_create

    server, url = start_server(out / "generation-llama.log")
    worker = start_worker({**os.environ, "PYTHONUNBUFFERED": "1"}, out / "generation-worker.log")
    try:
        lead = get_user_model().objects.create_user("bench-lead")
        project = project_create(name="Generation bench", slug="generation-bench", created_by=lead, guidelines="-")
        topics = ["rivers", "prime numbers", "bread", "HTTP caching", "tides", "chess openings", "vaccines", "glass"]
        path = out / "generation-prompts.jsonl"
        path.write_text("".join(json.dumps({"prompt": f"In one sentence, what is interesting about {t} ({i})?"}) + "\n"
                                for i, t in ((i, topics[i % len(topics)]) for i in range(args.prompts))))  # fmt: skip
        prompt_set = prompts_import(project=project, path=path, name="bench", user=lead)
        generator = generator_create(project=project, user=lead, name="smollm2", base_url=url, model="smollm2",
                                     max_concurrency=args.concurrency, requests_per_minute=100_000)  # fmt: skip
        prompts = list(Prompt.objects.filter(prompt_set=prompt_set).order_by("pk"))
        results, plan = [], None
        for round_no in range(args.rounds):
            nonce = f"Be brief. (round {round_no}, {uuid.uuid4().hex[:8]})"  # a fresh cache key for every request
            plan = plan_clean({"temperatures": TEMPERATURES, "samples": SAMPLES, "max_tokens": args.max_tokens,
                               "seed": round_no, "system": nonce})  # fmt: skip
            requests = [{"messages": messages_for(p.messages, plan), "temperature": s.temperature,
                         "top_p": plan["top_p"], "max_tokens": plan["max_tokens"], "seed": s.seed}
                        for p in prompts for s in slots(plan)]  # fmt: skip

            def pipeline_run(plan=plan):
                start, cpu = time.perf_counter(), cpu_seconds(worker.pid)
                run = generation_run_start(project=project, prompt_set=prompt_set, generator=generator, plan=plan,
                                           user=lead)  # fmt: skip
                while GenerationRun.objects.get(pk=run.pk).state in GenerationRun.LIVE:
                    time.sleep(0.25)  # a light poll: the model server needs both cores of this machine
                return run, time.perf_counter() - start, cpu_seconds(worker.pid) - cpu

            # the order alternates between rounds, so a slow spell of the shared machine hits both sides alike
            if round_no % 2 == 0:
                bare, bare_tokens = bare_loop(url, requests, concurrency=args.concurrency)
                run, pipeline, worker_cpu = pipeline_run()
            else:
                run, pipeline, worker_cpu = pipeline_run()
                bare, bare_tokens = bare_loop(url, requests, concurrency=args.concurrency)
            run.refresh_from_db()
            connection.close()
            results.append({
                "round": round_no, "requests": len(requests), "run_state": run.state,
                "bare_seconds": round(bare, 2), "pipeline_seconds": round(pipeline, 2),
                "bare_requests_per_s": round(len(requests) / bare, 3),
                "pipeline_requests_per_s": round(run.api_calls / pipeline, 3),
                "bare_output_tokens": bare_tokens, "pipeline_output_tokens": run.tokens_out,
                "worker_cpu_ms_per_request": round(1000 * worker_cpu / len(requests), 1),
                "throughput_ratio_pipeline_to_bare": round((run.api_calls / pipeline) / (len(requests) / bare), 3),
            })  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
        log = out / "generation-llama.log"
        before = len(REQUEST_LINE.findall(log.read_text()))
        rerun = generation_run_start(project=project, prompt_set=prompt_set, generator=generator, plan=plan, user=lead)
        while GenerationRun.objects.get(pk=rerun.pk).state in GenerationRun.LIVE:
            time.sleep(0.05)
        time.sleep(1)
        bare_total = sum(r["bare_seconds"] for r in results)
        pipeline_total = sum(r["pipeline_seconds"] for r in results)
        print(json.dumps({
            "command": " ".join(["bench/generation.py", *sys.argv[1:]]), "machine": machine_info(), "rounds": results,
            "throughput_ratio_all_rounds": round(bare_total / pipeline_total, 3),
            "rerun_requests_to_server": len(REQUEST_LINE.findall(log.read_text())) - before,
        }, indent=2))  # fmt: skip
    finally:
        worker.terminate()
        server.terminate()


if __name__ == "__main__":
    main()
