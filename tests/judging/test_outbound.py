"""Judge endpoints cannot be turned against the server's own network: link-local (cloud metadata) always refused,
private and loopback addresses refused in production unless listed, checked at connect time and after redirects,
and a refusal stops the run instead of being retried."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from judging.client import Fatal, classify, make_client
from judging.outbound import OutboundRefused, check_address
from tests.judging.fake_openai import FakeOpenAI


@pytest.mark.parametrize("ip", ["169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1", "::ffff:169.254.169.254"])
def test_link_local_and_reserved_addresses_are_always_refused(ip, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with pytest.raises(OutboundRefused):
        check_address(ip)


def test_private_addresses_follow_the_policy(settings):
    check_address("93.184.215.14")  # public: fine
    settings.OUTBOUND_ALLOW_PRIVATE = True
    check_address("127.0.0.1")
    check_address("10.1.2.3")
    settings.OUTBOUND_ALLOW_PRIVATE = False
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.5", "::1", "fd00::1"):
        with pytest.raises(OutboundRefused, match="private or loopback"):
            check_address(ip)
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.1.2.0/24", "169.254.10.10"]
    check_address("10.1.2.3")
    check_address("169.254.10.10")  # listed explicitly: the operator knows what it is


def ask(base_url):
    return make_client(base_url=base_url, api_key_env="").chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )


def test_a_real_request_to_a_refused_address_fails_as_fatal(settings):
    with FakeOpenAI() as server:
        assert ask(server.base_url).choices  # development default: loopback allowed
        settings.OUTBOUND_ALLOW_PRIVATE = False
        with pytest.raises(openai.APIConnectionError) as caught:
            ask(server.base_url)
        error = classify(caught.value)
        assert isinstance(error, Fatal) and "refused to connect to 127.0.0.1" in str(error)
        assert len(server.requests) == 1  # the refused request never reached the server
        settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
        assert ask(server.base_url).choices


class Redirector:
    """A server that answers every POST with a redirect to the cloud metadata address."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.send_response(307)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_redirects_are_checked_hop_by_hop(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    redirector = Redirector()
    try:
        with pytest.raises(openai.APIConnectionError) as caught:
            ask(redirector.base_url)
    finally:
        redirector.close()
    assert isinstance(caught.value.__cause__, OutboundRefused)
    assert "169.254.169.254" in str(classify(caught.value))
