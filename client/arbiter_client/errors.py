"""What the client raises."""

from __future__ import annotations

import httpx2 as httpx  # httpx's successor, which openai and huggingface_hub use too


class ArbiterError(Exception):
    """The server refused a call: ``status`` (0 when it was not an HTTP answer), a readable ``message`` (DRF's field
    errors spelled out, e.g. ``username: No such user.``) and the decoded ``body``."""

    def __init__(self, status: int, message: str, body=None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status, self.message, self.body = status, message, body

    @classmethod
    def from_response(cls, response: httpx.Response) -> ArbiterError:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:2000]
        return cls(response.status_code, _message(body) or response.reason_phrase, body)


class TimedOut(ArbiterError):
    def __init__(self, message: str) -> None:
        super().__init__(0, message)


def _message(body) -> str:
    if isinstance(body, dict):
        if "detail" in body and len(body) <= 2:
            return str(body["detail"])
        return "; ".join(f"{field}: {_message(value)}" for field, value in body.items())
    if isinstance(body, list):
        return " ".join(_message(item) for item in body)
    return str(body)
