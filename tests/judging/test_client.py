"""The judge client against a fault-injecting OpenAI-compatible server (real sockets, the real openai client)."""

import openai
import pytest

from judging import client as judge_client
from judging.client import Fatal, ItemRejected, Transient, classify, detect_mode, judge_messages, make_client
from tests.judging.fake_openai import Action, FakeOpenAI, ok, status, verdict

MESSAGES = [{"role": "system", "content": "judge"}, {"role": "user", "content": "Which is better?"}]


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    # The openai client's own backoff (0.5 s doubling) is what is tested; shorten the wait, not the logic.
    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.01, raising=False)
    monkeypatch.setattr(openai._base_client, "MAX_RETRY_DELAY", 0.05, raising=False)


def ask(server, mode="json_object_schema", timeout=None, **kw):
    c = make_client(base_url=server.base_url, api_key_env="")
    if timeout is not None:
        c = c.with_options(timeout=timeout)
    return judge_messages(c, model="m", messages=MESSAGES, mode=mode, temperature=0.0, max_tokens=64,
                          logprobs=False, **kw)  # fmt: skip


def test_detects_json_object_with_schema_when_json_schema_is_refused():
    with FakeOpenAI(reject_json_schema=True) as server:
        c = make_client(base_url=server.base_url, api_key_env="")
        assert detect_mode(c, model="m", messages=MESSAGES, max_tokens=64) == "json_object_schema"
        kinds = [r["response_format"]["type"] for r in server.requests]
        assert kinds == ["json_schema", "json_object"]  # one probe each, no retries
        assert "schema" in server.requests[1]["response_format"]


def test_detects_json_schema_where_supported(server):
    c = make_client(base_url=server.base_url, api_key_env="")
    assert detect_mode(c, model="m", messages=MESSAGES, max_tokens=64) == "json_schema"
    assert server.requests[0]["response_format"]["json_schema"]["strict"] is True


def test_valid_reply_is_parsed(server):
    parsed = ask(server)
    assert parsed.verdict.winner == "A" and parsed.verdict.score_a == 8 and parsed.tokens_in == 100


def test_one_repair_attempt_then_success(server):
    server.script = [ok("Sure! The first one is better."), ok(verdict("B", 2, 9))]
    parsed = ask(server)
    assert parsed.verdict.winner == "B" and len(server.requests) == 2
    assert "could not be used" in server.requests[1]["messages"][-1]["content"]
    assert parsed.tokens_in == 200  # both calls are paid for


def test_unparseable_after_the_repair_keeps_the_raw_text(server):
    server.script = [ok('{"winner": "C"}'), ok("still not json")]
    parsed = ask(server)
    assert parsed.verdict is None and len(server.requests) == 2
    assert '{"winner": "C"}' in parsed.raw and "still not json" in parsed.raw
    assert "not JSON" in parsed.error


def test_scores_out_of_range_are_invalid(server):
    server.script = [ok(verdict("A", 11, 3)), ok(verdict("A", 11, 3))]
    assert ask(server).verdict is None


def test_429_with_retry_after_is_retried_by_the_client(server):
    server.script = [status(429, retry_after=0.05), status(500), ok()]
    assert ask(server).verdict.winner == "A"
    assert len(server.requests) == 3


def test_retry_after_beyond_what_the_client_honours_comes_back_as_transient(server):
    server.script = [status(429, retry_after=300)]
    with pytest.raises(openai.RateLimitError) as exc:
        ask(server)
    error = classify(exc.value)
    assert isinstance(error, Transient) and error.retry_after == 300
    assert len(server.requests) == 1  # the client did not wait five minutes


def test_persistent_5xx_is_transient_after_the_clients_retries(server):
    server.script = [status(503)] * (judge_client.CLIENT_RETRIES + 1)
    with pytest.raises(openai.InternalServerError) as exc:
        ask(server)
    assert isinstance(classify(exc.value), Transient)
    assert len(server.requests) == judge_client.CLIENT_RETRIES + 1


def test_truncated_and_non_json_bodies_are_transient(server):
    server.script = [Action(truncate=True)] * (judge_client.CLIENT_RETRIES + 1)
    with pytest.raises(openai.APIError) as exc:
        ask(server)
    assert isinstance(classify(exc.value), Transient)
    server.script = [Action(raw_body=b"<html>502 Bad Gateway</html>", status=502)] * (judge_client.CLIENT_RETRIES + 1)
    with pytest.raises(openai.APIError) as exc:
        ask(server)
    assert isinstance(classify(exc.value), Transient)


def test_slow_response_times_out_as_transient(server):
    server.script = [Action(delay=1.0)] * (judge_client.CLIENT_RETRIES + 1)
    with pytest.raises(openai.APITimeoutError) as exc:
        ask(server, timeout=0.2)
    assert isinstance(classify(exc.value), Transient)


@pytest.mark.parametrize(("code", "kind"), [(401, Fatal), (403, Fatal), (404, Fatal), (400, ItemRejected)])
def test_non_transient_errors_are_not_retried(server, code, kind):
    server.script = [status(code, message="nope")]
    with pytest.raises(openai.APIStatusError) as exc:
        ask(server)
    assert isinstance(classify(exc.value), kind)
    assert len(server.requests) == 1


def test_missing_key_variable_is_fatal_and_the_key_goes_only_in_the_header(server, monkeypatch):
    with pytest.raises(Fatal, match="ARBITER_TEST_KEY"):
        make_client(base_url=server.base_url, api_key_env="ARBITER_TEST_KEY")
    monkeypatch.setenv("ARBITER_TEST_KEY", "sk-secret-123")
    c = make_client(base_url=server.base_url, api_key_env="ARBITER_TEST_KEY")
    judge_messages(c, model="m", messages=MESSAGES, mode="json_object", temperature=0, max_tokens=64, logprobs=False)
    assert "sk-secret-123" not in repr(server.requests)
