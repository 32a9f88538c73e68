"""Judge pipeline throughput against a bare asyncio loop, on the same real server, in one run.

    .venv/bin/python bench/judge.py [--pairs 30] [--concurrency 2] [--rounds 2] [--max-tokens 48]

Starts llama.cpp's OpenAI-compatible server (SmolLM2-135M, `make judge-server`) and, for each round:
1. bare: an asyncio loop with ``openai.AsyncOpenAI`` sends the exact messages the pipeline would send (both orders
   of every pair), ``concurrency`` at a time, same response format and parameters;
2. pipeline: ``run_start`` on a project with the same pairs, judged by a real Celery worker (Redis broker,
   PostgreSQL) through the cache, the rate limiter and the database, timed from start to the run's end.
Both sides send identical messages (temperature 0: the same replies and the same repair calls); each round uses a
fresh system prompt, so the pipeline's cache never answers for it. Throughput is compared as calls per second
(the server answers one request at a time, so both sides are bound by it; the question is what the pipeline adds).
Finally a re-run of the last pipeline run counts the requests the server receives (expected: 0). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from _env import ROOT, database_prepare, django_setup, machine_info

MODEL = ROOT / "var" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DB = "arbiter_bench_judge"
BROKER = "redis://127.0.0.1:6379/11"
REQUEST_LINE = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" 200')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path, n_ctx: int = 2048) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(MODEL), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", str(n_ctx), "--n_threads", "2"],  # fmt: skip
        stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("llama.cpp server did not start")


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "judge", "--pool", "solo", "--loglevel",
         "WARNING", "-n", f"bench-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],  # fmt: skip
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    from config.celery import app

    for _ in range(120):
        if app.control.ping(timeout=0.5):
            return proc
    raise SystemExit("worker did not start")


def bench_setup(db: str, broker: str) -> Path:
    """A fresh benchmark database (migrated) and broker for this process and its worker; the output folder."""
    if not MODEL.exists():
        raise SystemExit("run `make judge-server` first")
    database_prepare(db, fresh=True)
    import redis

    # a fresh broker too: tasks left unacknowledged by an interrupted run would come back and act on the new rows
    redis.Redis.from_url(broker).flushdb()
    os.environ["CELERY_BROKER_URL"] = broker
    django_setup(db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    return out


def bare_loop(url: str, jobs: list[list[dict]], *, concurrency: int, max_tokens: int) -> tuple[float, int]:
    """The same work as the pipeline without Celery, the database or the cache: per verdict one call with the
    same parameters, validation, and one repair call when the reply is invalid. Returns (seconds, requests)."""
    import openai

    from judging.client import REPAIR_PROMPT, _response_format, parse_verdict

    calls = 0

    async def main() -> None:
        nonlocal calls
        client = openai.AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=3)
        queue: asyncio.Queue = asyncio.Queue()
        for messages in jobs:
            queue.put_nowait(messages)
        options = {"model": "smollm2", "temperature": 0.0, "max_tokens": max_tokens,
                   "response_format": _response_format("json_object_schema", max_tokens)}  # fmt: skip

        async def worker() -> None:
            nonlocal calls
            while not queue.empty():
                messages = queue.get_nowait()
                r = await client.chat.completions.create(messages=messages, logprobs=True, top_logprobs=1, **options)
                calls += 1
                content = r.choices[0].message.content or ""
                verdict, problem = parse_verdict(content)
                if verdict is None:
                    repair = [*messages, {"role": "assistant", "content": content[:4000]},
                              {"role": "user", "content": REPAIR_PROMPT.format(problem=problem)}]  # fmt: skip
                    await client.chat.completions.create(messages=repair, **options)
                    calls += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start, calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    out = bench_setup(DB, BROKER)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Pair
    from annotation.services.projects import project_create
    from judging.engine import _calls
    from judging.models import JudgeConfig, JudgeRun
    from judging.prompts import DEFAULT_SYSTEM, DEFAULT_TEMPLATE
    from judging.services import judge_create, run_start

    server, url = start_server(out / "judge-llama.log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    worker = start_worker(env, out / "judge-worker.log")
    try:
        lead = get_user_model().objects.create_user("bench-lead")
        project = project_create(name="Judge bench", slug="judge-bench", created_by=lead, guidelines="Be correct.")
        topics = ["rivers", "prime numbers", "bread", "HTTP caching", "tides", "chess openings", "vaccines", "glass"]
        Pair.objects.bulk_create(
            Pair(project=project, prompt=[{"role": "user", "content": f"In two sentences, explain {t} ({i})."}],
                 response_a=f"{t.capitalize()} are explained here briefly and correctly ({i}).",
                 response_b=f"I am not sure about {t}.", content_hash=uuid.uuid4().hex, shuffle_key=i,
                 open_slots=3)
            for i, t in ((i, topics[i % len(topics)]) for i in range(args.pairs))
        )  # fmt: skip
        results = []
        run = judge = None
        for round_no in range(args.rounds):
            nonce = f" (benchmark round {round_no}, {uuid.uuid4().hex[:8]})"
            judge = judge_create(
                project=project, user=lead, name=f"bench-{round_no}", base_url=url, model="smollm2",
                max_tokens=args.max_tokens, max_concurrency=args.concurrency, requests_per_minute=100_000,
                system=DEFAULT_SYSTEM + nonce, template=DEFAULT_TEMPLATE,
            )  # fmt: skip
            # both sides know the format: no detection probes in the pipeline's time
            JudgeConfig.objects.filter(pk=judge.pk).update(response_mode="json_object_schema", logprobs_supported=True)
            judge.refresh_from_db()
            pair_ids = list(Pair.objects.filter(project=project).values_list("pk", flat=True))
            probe = JudgeRun(
                project=project, judge=judge, prompt_version=judge.prompt_versions.get(), pair_ids=pair_ids
            )
            messages = [call.messages for call in _calls(probe, probe.pair_ids)]
            # identical messages on both sides (temperature 0: the same replies, the same repairs)
            bare, bare_calls = bare_loop(url, messages, concurrency=args.concurrency, max_tokens=args.max_tokens)
            start = time.perf_counter()
            run = run_start(project=project, judge=judge, user=lead)
            while JudgeRun.objects.get(pk=run.pk).state in JudgeRun.LIVE:
                time.sleep(0.05)
            pipeline = time.perf_counter() - start
            run.refresh_from_db()
            connection.close()
            results.append({
                "round": round_no, "verdicts": len(messages), "bare_seconds": round(bare, 2),
                "pipeline_seconds": round(pipeline, 2), "run_state": run.state, "bare_calls": bare_calls,
                "pipeline_calls": run.api_calls, "bare_verdicts_per_s": round(len(messages) / bare, 3),
                "pipeline_verdicts_per_s": round(len(messages) / pipeline, 3),
                "bare_calls_per_s": round(bare_calls / bare, 3),
                "pipeline_calls_per_s": round(run.api_calls / pipeline, 3),
                "throughput_ratio_pipeline_to_bare": round((run.api_calls / pipeline) / (bare_calls / bare), 3),
            })  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
        log = out / "judge-llama.log"
        before = len(REQUEST_LINE.findall(log.read_text()))
        rerun = run_start(project=project, judge=judge, user=lead)
        while JudgeRun.objects.get(pk=rerun.pk).state in JudgeRun.LIVE:
            time.sleep(0.05)
        time.sleep(1)
        rerun_requests = len(REQUEST_LINE.findall(log.read_text())) - before
        print(json.dumps({
            "command": " ".join(["bench/judge.py", *sys.argv[1:]]), "machine": machine_info(), "rounds": results,
            "rerun_requests_to_server": rerun_requests,
        }, indent=2))  # fmt: skip
    finally:
        worker.terminate()
        server.terminate()


if __name__ == "__main__":
    main()
