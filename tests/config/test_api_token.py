"""The API token page: a user makes, sees and replaces their own token; the old key stops working at once."""

from rest_framework.authtoken.models import Token

from tests.conftest import csrf, login


def test_a_user_makes_and_replaces_their_token_and_the_old_one_stops_working(lead, annotator):
    client = login(lead)
    page = client.get("/accounts/token/")
    assert page.status_code == 200 and b'id="api-token"' not in page.content
    assert client.post("/accounts/token/", {"csrfmiddlewaretoken": csrf(client, "/accounts/token/")}).status_code == 302
    first = Token.objects.get(user=lead).key
    page = client.get("/accounts/token/")
    assert first in page.content.decode() and b"arbiter_client" in page.content
    api = {"HTTP_AUTHORIZATION": f"Token {first}"}
    assert login(annotator).get("/accounts/token/").content.decode().count(first) == 0  # nobody else's
    from django.test import Client

    assert Client().get("/api/v1/projects/", **api).status_code == 200
    client.post("/accounts/token/", {"csrfmiddlewaretoken": csrf(client, "/accounts/token/")})
    assert Token.objects.get(user=lead).key != first
    assert Client().get("/api/v1/projects/", **api).status_code == 401
