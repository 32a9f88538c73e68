"""The lead's page actions through the REST API (issue 21): members, guidelines, imports, pairs with their labels and
verdicts, calibration marking and the raw label dump. Each endpoint calls the page's service and access helper; these
tests check what each answers and that it changed (or did not change) what the page would have."""

import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Assignment, GuidelineVersion, ImportBatch, Label, Membership, Pair
from judging.models import Verdict
from judging.services import judge_create
from tests.conftest import csrf
from tests.factories import ProjectFactory, UserFactory, make_pairs

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def human_label(pair: Pair, user, choice: str, **fields) -> Label:
    """A finished regular assignment and its label, written straight to the tables (labelling has its own tests)."""
    now = timezone.now()
    assignment = Assignment.objects.create(
        project=pair.project, pair=pair, annotator=user, state=Assignment.State.DONE, left_is_a=True,
        served_at=now, expires_at=now + timedelta(hours=1), finished_at=now,
    )  # fmt: skip
    Pair.objects.filter(pk=pair.pk).update(label_count=pair.label_count + 1)
    pair.label_count += 1
    return Label.objects.create(project=pair.project, pair=pair, assignment=assignment, annotator=user, choice=choice,
                                left_is_a=True, **fields)  # fmt: skip


# --- members ---------------------------------------------------------------------------------------------------


def test_a_lead_adds_members_by_username_and_by_email(project, lead):
    by_name, by_mail = UserFactory(username="newcomer"), UserFactory(username="mailed", email="Mailed@Example.com")
    url = reverse("api-members", args=[project.slug])
    r = api(lead).post(url, {"username": "newcomer", "role": "annotator"}, format="json")
    assert r.status_code == 201 and (r.json()["username"], r.json()["role"]) == ("newcomer", "annotator")
    r = api(lead).post(url, {"email": "mailed@example.COM", "role": "lead"}, format="json")  # case does not matter
    assert r.status_code == 201 and (r.json()["user_id"], r.json()["role"]) == (by_mail.pk, "lead")
    assert Membership.objects.get(project=project, user=by_name).role == "annotator"
    assert Membership.objects.get(project=project, user=by_mail).role == "lead"
    # adding someone already there sets the role, as the members page's form does
    r = api(lead).post(url, {"username": "newcomer", "role": "lead"}, format="json")
    assert r.status_code == 200 and Membership.objects.get(project=project, user=by_name).role == "lead"

    listed = {m["username"]: m for m in api(lead).get(url).json()}
    assert set(listed) == {"lead", "annotator", "newcomer", "mailed"}
    assert listed["annotator"] == {**listed["annotator"], "role": "annotator", "paused": False, "paused_reason": "",
                                   "labels": 0}  # fmt: skip
    assert "email" not in listed["mailed"]  # the members page shows no e-mail addresses either


def test_adding_an_unknown_user_is_a_400_naming_the_field_and_changes_nothing(project, lead):
    UserFactory(username="retired", email="retired@example.com", is_active=False)
    UserFactory(username="twin-1", email="twin@example.com")
    UserFactory(username="twin-2", email="twin@example.com")
    url = reverse("api-members", args=[project.slug])
    before = set(Membership.objects.values_list("project_id", "user_id", "role"))
    for body, field in [
        ({"username": "ghost", "role": "annotator"}, "username"),
        ({"username": "retired", "role": "annotator"}, "username"),  # inactive
        ({"email": "ghost@example.com", "role": "annotator"}, "email"),
        ({"email": "twin@example.com", "role": "annotator"}, "email"),  # ambiguous: give the username
        ({"email": "not-an-address", "role": "annotator"}, "email"),
        ({"role": "annotator"}, "username"),  # neither
        ({"username": "twin-1", "email": "twin@example.com", "role": "annotator"}, "username"),  # both
        ({"username": "twin-1", "role": "owner"}, "role"),
    ]:
        r = api(lead).post(url, body, format="json")
        assert r.status_code == 400 and field in r.json(), (body, r.json())
    assert set(Membership.objects.values_list("project_id", "user_id", "role")) == before


def test_a_lead_changes_a_role_and_removes_a_member_but_not_themselves(project, lead, annotator):
    member_url = reverse("api-member", args=[project.slug, annotator.pk])
    r = api(lead).patch(member_url, {"role": "lead"}, format="json")
    assert r.status_code == 200 and r.json()["role"] == "lead"
    assert Membership.objects.get(project=project, user=annotator).role == "lead"
    r = api(lead).patch(member_url, {"role": "boss"}, format="json")
    assert r.status_code == 400 and "role" in r.json()
    assert Membership.objects.get(project=project, user=annotator).role == "lead"

    myself = api(lead).delete(reverse("api-member", args=[project.slug, lead.pk]))
    assert myself.status_code == 400 and "You cannot remove yourself." in str(myself.json())
    assert api(lead).delete(member_url).status_code == 204
    assert set(project.memberships.values_list("user__username", flat=True)) == {"lead"}
    assert api(lead).delete(member_url).status_code == 404  # not a member any more
    assert api(lead).patch(member_url, {"role": "annotator"}, format="json").status_code == 404


def test_the_members_page_refuses_self_removal_through_the_same_service(project, lead, as_lead):
    url = reverse("annotation:member_remove", args=[project.slug, lead.pk])
    r = as_lead.post(url, HTTP_X_CSRFTOKEN=csrf(as_lead), follow=True)
    assert r.status_code == 200 and "You cannot remove yourself." in r.content.decode()
    assert project.memberships.filter(user=lead).exists()


def test_a_lead_reinstates_a_paused_annotator(project, lead, annotator):
    reason = "Calibration accuracy 20% on the last 5 calibration pairs."
    Membership.objects.filter(project=project, user=annotator).update(paused_at=timezone.now(), paused_reason=reason)
    [listed] = [
        m for m in api(lead).get(reverse("api-members", args=[project.slug])).json() if m["user_id"] == annotator.pk
    ]
    assert (listed["paused"], listed["paused_reason"]) == (True, reason)
    url = reverse("api-member-reinstate", args=[project.slug, annotator.pk])
    assert api(annotator).post(url).status_code == 404  # not their call
    r = api(lead).post(url)
    assert r.status_code == 200 and (r.json()["paused"], r.json()["paused_reason"]) == (False, "")
    membership = Membership.objects.get(project=project, user=annotator)
    assert (membership.paused_at, membership.paused_reason) == (None, "")


def test_the_member_list_counts_each_members_labels_in_the_project(project, lead, annotator):
    pairs = make_pairs(project, 3)
    for pair in pairs[:2]:
        human_label(pair, annotator, "A")
    elsewhere = make_pairs(ProjectFactory(slug="other"), 1)[0]
    human_label(elsewhere, annotator, "B")  # another project's label does not count here
    counts = {m["username"]: m["labels"] for m in api(lead).get(reverse("api-members", args=[project.slug])).json()}
    assert counts == {"lead": 0, "annotator": 2}


# --- guidelines and imports ------------------------------------------------------------------------------------


def test_a_lead_writes_a_new_guideline_version_and_lists_them_newest_first(project, lead, annotator):
    url = reverse("api-guidelines", args=[project.slug])
    r = api(lead).post(url, {"body": "  Prefer **exact** answers.\n"}, format="json")
    assert r.status_code == 201 and (r.json()["version"], r.json()["author"]) == (2, "lead")
    assert r.json()["body"] == "Prefer **exact** answers."  # stripped, as the guidelines page's form does
    again = api(lead).post(url, {"body": "Prefer **exact** answers."}, format="json")
    assert again.status_code == 200 and again.json()["version"] == 2  # the same text: no new version
    listed = api(lead).get(url).json()
    assert [(v["version"], v["body"], v["author"]) for v in listed] == [
        (2, "Prefer **exact** answers.", "lead"), (1, "Pick the more helpful answer.", None)
    ]  # fmt: skip
    assert GuidelineVersion.objects.filter(project=project).count() == 2
    assert api(annotator).get(url).status_code == 404


def test_the_import_list_shows_batches_newest_first(project, lead, annotator):
    old = ImportBatch.objects.create(project=project, created_by=lead, filename="old.jsonl")
    new = ImportBatch.objects.create(project=project, created_by=lead, filename="new.jsonl")
    url = reverse("api-imports", args=[project.slug])
    assert [b["id"] for b in api(lead).get(url).json()] == [str(new.public_id), str(old.public_id)]
    assert api(annotator).get(url).status_code == 404


# --- pairs -----------------------------------------------------------------------------------------------------


@pytest.fixture
def judged(project, lead):
    """A judge of the project and a function that records its verdict on a pair."""
    judge = judge_create(project=project, user=lead, name="strict-judge", base_url="http://127.0.0.1:9/v1",
                         model="judge-model-x", api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip
    prompt = judge.prompt_versions.get()

    def verdict(pair, winner="A", order=Verdict.Order.AB):
        return Verdict.objects.create(pair=pair, judge=judge, prompt_version=prompt, order=order,
                                      status=Verdict.Status.OK, winner=winner, winner_slot="first",
                                      rationale=f"{winner} is exact.", score_a=8, score_b=3)  # fmt: skip

    judge.verdict = verdict
    return judge


def _walk(client, url, params) -> list[int]:
    """Every pair id the list gives, following the cursor from page to page."""
    ids, page = [], client.get(url, params)
    while True:
        assert page.status_code == 200, page.content
        ids += [p["id"] for p in page.json()["results"]]
        if not page.json()["next"]:
            return ids
        page = client.get(page.json()["next"])


def test_the_pair_list_filters_as_the_pair_browser_and_pages_by_cursor(project, lead, annotator, judged):
    pairs = make_pairs(project, 7)
    ids = [p.pk for p in pairs]
    labelled, complete = pairs[0], pairs[1]
    human_label(labelled, annotator, "A")
    Pair.objects.filter(pk=complete.pk).update(label_count=project.overlap_k)
    Pair.objects.filter(pk=pairs[2].pk).update(gold="B", open_slots=0)
    batch = ImportBatch.objects.create(project=project, created_by=lead, filename="batch.jsonl")
    Pair.objects.filter(pk__in=ids[3:5]).update(import_batch=batch)
    Pair.objects.filter(pk=ids[5]).update(metadata={"source": "forum-dump"})
    judged.verdict(pairs[6])
    other = judge_create(project=project, user=lead, name="other-judge", base_url="http://127.0.0.1:9/v1",
                         model="m", api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip
    client, url = api(lead), reverse("api-pairs", args=[project.slug])

    every = _walk(client, url, {"page_size": 2})
    assert every == sorted(ids)  # each pair once, in id order, over four pages
    for params, expected in [
        ({"labelled": "true"}, [labelled.pk, complete.pk]),
        ({"labelled": "false"}, ids[2:]),
        ({"complete": "true"}, [complete.pk]),
        ({"complete": "false"}, [labelled.pk, *ids[2:]]),
        ({"calibration": "true"}, [ids[2]]),
        ({"calibration": "false"}, [i for i in ids if i != ids[2]]),
        ({"source": str(batch.public_id)}, ids[3:5]),
        ({"source": "forum-dump"}, [ids[5]]),
        ({"has_judge": "true"}, [ids[6]]),
        ({"has_judge": str(judged.public_id)}, [ids[6]]),
        ({"has_judge": str(other.public_id)}, []),
        ({"has_judge": "false"}, ids[:6]),
        ({"q": pairs[4].external_id}, [ids[4]]),
        ({"labelled": "false", "calibration": "false", "page_size": 1}, [i for i in ids[3:]]),
    ]:
        assert _walk(client, url, params) == expected, params

    first = client.get(url, {"page_size": 1}).json()["results"][0]
    assert set(first) == {"id", "external_id", "prompt", "gold", "label_count", "open_slots", "created_at"}
    assert "model_a" not in first  # the list carries only what the selector loads; the detail has the rest
    for params, field in [({"labelled": "perhaps"}, "labelled"), ({"has_judge": "judge-x"}, "has_judge")]:
        r = client.get(url, params)
        assert r.status_code == 400 and field in r.json(), params
    assert api(annotator).get(url).status_code == 404


def test_the_pair_detail_shows_texts_models_labels_and_verdicts_raw(project, lead, annotator, judged):
    [pair] = make_pairs(project, 1)
    hostile = '<script>alert("x")</script> **bold**'
    Pair.objects.filter(pk=pair.pk).update(response_a=hostile, metadata={"task": "xss"}, gold="A",
                                           gold_explanation="A is *exact*.")  # fmt: skip
    pair.refresh_from_db()
    human_label(pair, annotator, "B", strength=2, rationale="B explains.", criteria={"helpfulness": "B"},
                time_on_item_ms=4200)  # fmt: skip
    Label.objects.create(project=project, pair=pair, source="external", external_annotator="rater-9", choice="tie")
    judged.verdict(pair, "A", Verdict.Order.AB)
    judged.verdict(pair, "B", Verdict.Order.BA)

    r = api(lead).get(reverse("api-pair", args=[project.slug, pair.pk]))
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    body = r.json()
    assert body["response_a"] == hostile and "&lt;" not in r.content.decode()  # raw text in JSON, never HTML
    assert (body["model_a"], body["model_b"], body["gold"], body["gold_explanation"]) == (
        "model-alpha", "model-beta", "A", "A is *exact*."
    )  # fmt: skip
    assert body["metadata"] == {"task": "xss"} and body["prompt"] == pair.prompt
    human, imported = body["labels"]
    assert {k: human[k] for k in ("annotator", "choice", "strength", "rationale", "criteria", "time_on_item_ms",
                                  "kind", "source")} == {  # fmt: skip
        "annotator": "annotator", "choice": "B", "strength": 2, "rationale": "B explains.",
        "criteria": {"helpfulness": "B"}, "time_on_item_ms": 4200, "kind": "regular", "source": "human",
    }  # fmt: skip
    assert human["created_at"]
    assert (imported["annotator"], imported["external_annotator"], imported["kind"], imported["choice"]) == (
        None, "rater-9", "imported", "tie"
    )  # fmt: skip
    assert [(v["judge_name"], v["order"], v["choice"], v["rationale"]) for v in body["verdicts"]] == [
        ("strict-judge", "ab", "A", "A is exact."), ("strict-judge", "ba", "B", "B is exact.")
    ]  # fmt: skip
    assert body["verdicts"][0]["judge"] == str(judged.public_id)

    assert api(annotator).get(reverse("api-pair", args=[project.slug, pair.pk])).status_code == 404
    elsewhere = make_pairs(ProjectFactory(slug="other"), 1)[0]
    assert api(lead).get(reverse("api-pair", args=[project.slug, elsewhere.pk])).status_code == 404


# --- calibration -----------------------------------------------------------------------------------------------


def test_a_lead_marks_and_unmarks_a_calibration_pair(project, lead, annotator):
    [pair] = make_pairs(project, 1)
    human_label(pair, annotator, "A")
    url = reverse("api-pair-calibration", args=[project.slug, pair.pk])
    r = api(lead).put(url, {"gold": "B", "explanation": " Guideline 2: exact wins. "}, format="json")
    marked = {"id": pair.pk, "gold": "B", "explanation": "Guideline 2: exact wins.", "open_slots": 0}
    assert r.status_code == 200 and r.json() == marked
    pair.refresh_from_db()
    assert (pair.gold, pair.gold_explanation, pair.open_slots) == ("B", "Guideline 2: exact wins.", 0)

    for body in ({"gold": "C"}, {"gold": ""}, {"explanation": "no answer"}, {"gold": "both_bad_and_more"}):
        r = api(lead).put(url, body, format="json")
        assert r.status_code == 400 and "gold" in r.json(), body
    project.allow_tie = False
    project.save(update_fields=["allow_tie"])
    r = api(lead).put(url, {"gold": "tie"}, format="json")  # not one of this project's choices: the service says so
    assert r.status_code == 400 and "gold" in r.json()
    pair.refresh_from_db()
    assert (pair.gold, pair.open_slots) == ("B", 0)
    assert api(annotator).put(url, {"gold": "A"}, format="json").status_code == 404

    r = api(lead).delete(url)
    assert r.status_code == 200 and (r.json()["gold"], r.json()["explanation"]) == ("", "")
    pair.refresh_from_db()
    assert (pair.gold, pair.gold_explanation, pair.open_slots) == ("", "", project.overlap_k - 1)  # back in the pool


# --- the raw label dump ----------------------------------------------------------------------------------------


def _dump(client, slug, **params):
    r = client.get(reverse("api-labels", args=[slug]), params)
    body = b"".join(r.streaming_content) if r.streaming else r.content
    return r, body


def test_the_label_dump_streams_every_label_as_jsonl_or_parquet(project, lead, annotator):
    import pyarrow.parquet as pq

    pairs = make_pairs(project, 2)
    human_label(pairs[0], annotator, "A", rationale="A is right.")
    Label.objects.create(project=project, pair=pairs[1], source="external", external_annotator="rater-9", choice="B")
    client = api(lead)

    r, body = _dump(client, project.slug, format="jsonl")
    assert r.status_code == 200 and r.streaming and r["Content-Type"] == "application/x-ndjson"
    assert r["Content-Disposition"] == f'attachment; filename="{project.slug}-labels.jsonl"'
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [(row["annotator"], row["choice"]) for row in rows] == [("annotator", "A"), ("rater-9", "B")]

    r, body = _dump(client, project.slug)  # JSONL unless asked otherwise
    assert r.status_code == 200 and r["Content-Type"] == "application/x-ndjson" and body.count(b"\n") == 2

    r, body = _dump(client, project.slug, format="parquet", pseudonymize="true")
    assert r.status_code == 200 and r["Content-Type"] == "application/vnd.apache.parquet"
    assert r["Content-Disposition"] == f'attachment; filename="{project.slug}-labels.parquet"'
    table = pq.read_table(io.BytesIO(body))
    assert table.column("annotator").to_pylist() == ["annotator-1", "annotator-2"]
    assert table.column("choice").to_pylist() == ["A", "B"]

    for params, field in [({"format": "csv"}, "format"), ({"pseudonymize": "perhaps"}, "pseudonymize")]:
        r, body = _dump(client, project.slug, **params)
        assert r.status_code == 400 and field in json.loads(body), params
    assert _dump(api(annotator), project.slug)[0].status_code == 404
