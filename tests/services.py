"""What a test needs that the machine may lack (PostgreSQL, Redis, Debian's chromium, the llama.cpp server, the
SmolLM2 file, the shared AlpacaEval pairs). ``make test`` and CI set ARBITER_REQUIRE_SERVICES=1: a missing one fails
the test, so a green run means every real component ran. A developer without them opts out with
ARBITER_REQUIRE_SERVICES=0, and those tests skip with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.env import env_bool

_ALPACAEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpacaeval_pairs.jsonl"


def services_required() -> bool:
    return env_bool("ARBITER_REQUIRE_SERVICES", False)


def require(available: bool, message: str) -> None:
    """Go on when ``available``; otherwise fail (services required) or skip, with ``message`` saying what is missing
    and how to get it."""
    if available:
        return
    if services_required():
        pytest.fail(f"{message} (ARBITER_REQUIRE_SERVICES=1; set it to 0 to skip such tests instead)")
    pytest.skip(message)


def alpacaeval_pairs() -> Path:
    """The 4,025 real AlpacaEval pairs with two GPT-4-turbo labels each (../shared/data, beside the repository)."""
    require(_ALPACAEVAL.exists(), f"{_ALPACAEVAL} is not on this machine (the shared data beside the repository)")
    return _ALPACAEVAL
