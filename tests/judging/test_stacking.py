"""Stacking scorers per axis (judging.stacking): the normalisations' properties, a two-scorer composite's exact values
(missing scorers renormalised, a pair no scorer judged left out), recompute replacing every score, each scorer's
current prompt version, validation naming the field, the summary, and the pages and API (leads only; model output
rendered sanitised)."""

import math
import uuid

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from hypothesis import assume, given
from hypothesis import strategies as st
from rest_framework.test import APIClient
from scipy.stats import spearmanr

from annotation.models import Membership, Pair
from judging.models import Composite, CompositeScore, JudgeConfig, PairJudgement, PromptVersion
from judging.selectors import prompt_current
from judging.services import judge_create, prompt_update
from judging.stacking.axes import parse_axes_text
from judging.stacking.normalise import normalise, rank, symmetric, zscore
from judging.stacking.services import composite_compute, composite_create, composite_update
from tests.conftest import csrf, login
from tests.factories import ProjectFactory, UserFactory, make_pairs, member

# ---------------------------------------------------------------------------------------------------------------
# normalise: pure properties

# Margins: score differences, with exact zeros (ties) common; nothing between 0 and 1e-9 (float dust, not margins).
finite = st.one_of(st.just(0.0), st.floats(min_value=-1e6, max_value=1e6).map(lambda x: 0.0 if abs(x) < 1e-9 else x))
samples = st.lists(finite, min_size=2, max_size=60)


def spread(values) -> bool:
    v = np.asarray(values)
    return float(v.max() - v.min()) > 1e-6 * max(1.0, float(np.abs(v).max()))


@given(samples)
def test_zscore_has_mean_0_and_sd_1_unless_constant(values):
    z = zscore(values)
    if spread(values):
        assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    elif len(set(values)) == 1:
        assert not z.any()


@given(samples, st.floats(min_value=1e-3, max_value=1e3), st.floats(min_value=-1e3, max_value=1e3))
def test_zscore_is_invariant_to_positive_affine_maps(values, scale, shift):
    assume(spread(values))
    v = np.asarray(values)
    assert np.allclose(zscore(scale * v + shift), zscore(v), atol=1e-6)


@given(st.floats(min_value=-1e6, max_value=1e6), st.integers(min_value=1, max_value=30))
def test_constant_input_gives_zeros(value, n):
    assert not zscore([value] * n).any()
    assert not rank([value] * n).any()


monotone = st.sampled_from([lambda x: x**3, np.arctan, lambda x: np.sinh(x / 1e5), lambda x: 7 * x - 3, np.cbrt])


@given(samples, monotone)
def test_rank_is_invariant_to_strictly_increasing_maps(values, f):
    v = np.asarray(values)
    fv = f(v)
    # the map must stay strictly increasing in floating point on these values
    assume(np.array_equal(np.argsort(v, kind="stable"), np.argsort(fv, kind="stable")))
    assume(len(np.unique(v)) == len(np.unique(fv)))
    assert np.allclose(rank(fv), rank(v))


@given(samples)
def test_rank_is_bounded_and_order_preserving(values):
    v = np.asarray(values)
    r = rank(v)
    assert ((r >= -1) & (r <= 1)).all()
    i, j = np.meshgrid(np.arange(len(v)), np.arange(len(v)))
    assert (r[i][v[i] < v[j]] < r[j][v[i] < v[j]]).all()  # strictly: a larger margin never ranks lower
    assert (r[i][v[i] == v[j]] == r[j][v[i] == v[j]]).all()  # ties share their average rank
    if len(np.unique(v)) == len(v):  # no ties: the ends are reached
        assert r.min() == -1 and r.max() == 1


@given(samples, st.sampled_from(["z", "rank"]))
def test_composite_normalisation_keeps_the_sign_and_is_odd(values, kind):
    """What composites use: a margin's sign is its verdict, so it survives, 0 stays 0, and swapping A and B of
    every pair negates every value."""
    v = np.asarray(values)
    n = normalise(kind, v)
    assert (np.sign(n) == np.sign(v)).all()
    assert (normalise(kind, -v) == -n).all()


@given(samples)
def test_composite_z_is_the_z_score_among_both_orientations(values):
    """normalise("z") computes m / rms(m) directly (exact signs); it is zscore over ±m."""
    assert np.allclose(normalise("z", values), symmetric(zscore, values), atol=1e-9)


@given(samples, st.floats(min_value=1e-3, max_value=1e3))
def test_composite_normalisation_ignores_a_scorers_scale(values, scale):
    v = np.asarray(values)
    assert np.allclose(normalise("z", scale * v), normalise("z", v), atol=1e-9)
    assume(len(np.unique(scale * v)) == len(np.unique(v)))  # no two margins merged by rounding
    assert np.allclose(normalise("rank", scale * v), normalise("rank", v))


def test_a_scorer_preferring_a_everywhere_still_prefers_a_everywhere():
    """Centring on the scorer's own mean would turn half of these into preferences for B."""
    for kind in ("z", "rank"):
        assert (normalise(kind, [1.0, 2.0, 3.0, 4.0]) > 0).all()
    assert np.allclose(symmetric(zscore, [2.0, -2.0, 4.0, 1.0]), [0.8, -0.8, 1.6, 0.4])
    assert np.allclose(normalise("z", [2.0, -2.0, 4.0, 1.0]), [0.8, -0.8, 1.6, 0.4])
    assert np.allclose(symmetric(rank, [2.0, -2.0, 4.0, 1.0]), [4 / 7, -4 / 7, 1.0, 1 / 7])
    assert normalise("z", []).shape == (0,)
    with pytest.raises(ValueError):
        zscore([1.0, float("nan")])


def test_axes_text_syntax():
    assert parse_axes_text("# comment\nharmless 2: rm × 1, gpt judge * 0.5\n\nhelpful: rm") == [
        {"name": "harmless", "weight": 2.0, "scorers": [{"judge": "rm", "weight": 1.0},
                                                         {"judge": "gpt judge", "weight": 0.5}]},
        {"name": "helpful", "weight": 1.0, "scorers": [{"judge": "rm", "weight": 1.0}]},
    ]  # fmt: skip
    negative = {"name": "a", "weight": -1.0, "scorers": [{"judge": "x", "weight": -2}]}
    assert parse_axes_text("a -1: x x -2")[0] == negative  # parsed; the service refuses the weights
    with pytest.raises(ValueError, match="line 2"):
        parse_axes_text("a: x\nno colon here")


# ---------------------------------------------------------------------------------------------------------------
# composites on a small project


def judge_named(project, lead, name) -> JudgeConfig:
    return judge_create(project=project, user=lead, name=name, base_url="https://judge.example.com/v1", model=name)


def reward_model(project, lead, name) -> JudgeConfig:
    """A reward model as curation sees it (its one empty prompt version); the real service checks the checkpoint."""
    judge = JudgeConfig.objects.create(project=project, created_by=lead, name=name, model="rm", both_orders=False,
                                       kind=JudgeConfig.Kind.REWARD_MODEL)  # fmt: skip
    PromptVersion.objects.create(judge=judge, version=1, system="", template="")
    return judge


def judged(judge, margins: dict):
    """PairJudgements of the judge's current prompt version: {pair: margin}."""
    version = prompt_current(judge)
    for pair, margin in margins.items():
        winner = "A" if margin > 0 else "B" if margin < 0 else "tie"
        PairJudgement.objects.update_or_create(pair=pair, judge=judge, prompt_version=version,
                                               defaults={"winner": winner, "consistent": True, "margin": margin,
                                                         "orders": 1})  # fmt: skip


@pytest.fixture
def stack(project, lead):
    """Five pairs; an LLM judge on four, a reward model on three (not p3); p4 unjudged. Helpful = judge ×1 + rm ×3
    (weight 1), harmless = rm (weight 2)."""
    pairs = make_pairs(project, 5)
    llm, rm = judge_named(project, lead, "llm"), reward_model(project, lead, "rm")
    judged(llm, {pairs[0]: 2.0, pairs[1]: -2.0, pairs[2]: 4.0, pairs[3]: 1.0})  # symmetric z: .8 -.8 1.6 .4
    judged(rm, {pairs[0]: 0.5, pairs[1]: 0.5, pairs[2]: -0.5})  # symmetric z: 1 1 -1
    helpful = [{"judge": llm.pk, "weight": 1}, {"judge": rm.pk, "weight": 3}]
    axes = [{"name": "helpful", "weight": 1, "scorers": helpful},
            {"name": "harmless", "weight": 2, "scorers": [{"judge": rm.pk, "weight": 1}]}]  # fmt: skip
    composite = composite_create(project=project, user=lead, name="hh", axes=axes)
    return composite, pairs, llm, rm


def scores(composite) -> dict:
    return {s.pair_id: (s.value, s.axes) for s in CompositeScore.objects.filter(composite=composite)}


EXPECTED = {  # pair index: (composite, axes)
    0: ((0.95 + 2 * 1) / 3, {"helpful": (0.8 + 3) / 4, "harmless": 1.0}),
    1: ((0.55 + 2 * 1) / 3, {"helpful": (-0.8 + 3) / 4, "harmless": 1.0}),
    2: ((-0.35 - 2 * 1) / 3, {"helpful": (1.6 - 3) / 4, "harmless": -1.0}),
    3: (0.4, {"helpful": 0.4}),  # the rm is missing: helpful is the llm alone, harmless is absent
}


def assert_expected(composite, pairs):
    got = scores(composite)
    assert set(got) == {pairs[i].pk for i in EXPECTED}  # p4: no scorer, no score
    for i, (value, axes) in EXPECTED.items():
        assert got[pairs[i].pk][0] == pytest.approx(value)
        assert got[pairs[i].pk][1] == pytest.approx(axes)
        assert set(got[pairs[i].pk][1]) == set(axes)


@pytest.mark.django_db
def test_a_composite_of_two_scorers_has_the_exact_expected_values(stack):
    composite, pairs, llm, rm = stack
    composite = composite_compute(composite=composite)
    assert_expected(composite, pairs)
    assert composite.computed_at is not None
    stats = composite.stats
    assert stats["pairs"] == 4 and stats["winners"] == {"A": 3, "B": 1, "tie": 0}
    assert stats["axes"] == {"helpful": 4, "harmless": 3}
    assert stats["scorers"][str(llm.pk)] == pytest.approx({"pairs": 4, "mean": 1.25, "sd": math.sqrt(4.6875)})
    assert stats["scorers"][str(rm.pk)] == pytest.approx({"pairs": 3, "mean": 0.5 / 3, "sd": np.std([0.5, 0.5, -0.5])})
    [corr] = stats["correlations"]
    helpful = [EXPECTED[i][1]["helpful"] for i in range(3)]
    assert corr["axes"] == ["helpful", "harmless"] and corr["pairs"] == 3
    assert corr["spearman"] == pytest.approx(spearmanr(helpful, [1, 1, -1]).statistic)


@pytest.mark.django_db
def test_rank_normalisation(stack, lead):
    composite, pairs, llm, _ = stack
    composite = composite_update(composite=composite, normalisation="rank", axes=one_axis(llm.pk, weight=2))
    composite_compute(composite=composite)
    got = scores(composite)
    expected = [4 / 7, -4 / 7, 1.0, 1 / 7]  # among ±[2, -2, 4, 1]
    assert [got[pairs[i].pk][0] for i in range(4)] == pytest.approx(expected)


@pytest.mark.django_db
def test_recompute_is_idempotent_and_replaces_every_score(stack, django_assert_max_num_queries):
    composite, pairs, llm, rm = stack
    composite_compute(composite=composite)
    first = scores(composite)
    composite_compute(composite=composite)
    assert scores(composite) == first
    assert CompositeScore.objects.filter(composite=composite).count() == 4
    # The judgements change: the llm loses p3 (no scorer left there), the rm now judges p4.
    PairJudgement.objects.filter(judge=llm, pair=pairs[3]).delete()
    judged(rm, {pairs[4]: -0.5})
    composite_compute(composite=composite)
    got = scores(composite)
    assert set(got) == {pairs[i].pk for i in (0, 1, 2, 4)}
    assert got[pairs[4].pk][1] == pytest.approx({"helpful": -1.0, "harmless": -1.0})  # rms of ±.5 is .5
    # Bulk writes: a handful of statements whatever the number of pairs.
    with django_assert_max_num_queries(20):
        composite_compute(composite=composite)


@pytest.mark.django_db
def test_each_scorer_counts_with_its_current_prompt_version(stack, lead):
    composite, pairs, llm, _ = stack
    prompt_update(judge=llm, system="Be strict.", template="{prompt} {response_a} {response_b}", user=lead)
    composite = composite_compute(composite=composite)
    got = scores(composite)
    assert set(got) == {pairs[i].pk for i in range(3)}  # v2 has judged nothing: only the rm's pairs remain
    assert composite.stats["versions"][str(llm.pk)] == 2
    judged(llm, {pairs[3]: -3.0})  # v2's first judgement
    got = scores(composite_compute(composite=composite))
    assert got[pairs[3].pk] == (pytest.approx(-1.0), {"helpful": pytest.approx(-1.0)})


@pytest.mark.django_db
def test_changing_axes_drops_the_stale_scores(stack):
    composite, pairs, llm, rm = stack
    composite_compute(composite=composite)
    same = composite_update(composite=composite, name="renamed", axes=composite.axes)
    assert same.computed_at is not None and CompositeScore.objects.filter(composite=composite).count() == 4
    changed = composite_update(composite=composite, axes=[{"name": "x", "weight": 1,
                                                           "scorers": [{"judge": rm.pk, "weight": 1}]}])  # fmt: skip
    assert changed.computed_at is None and changed.stats == {}
    assert not CompositeScore.objects.filter(composite=composite).exists()


def one_axis(judge, weight=1.0, axis_weight=1.0, name="helpful"):
    return [{"name": name, "weight": axis_weight, "scorers": [{"judge": judge, "weight": weight}]}]


@pytest.mark.django_db
def test_validation_names_the_field(project, lead):
    llm = judge_named(project, lead, "llm")
    other = ProjectFactory()
    foreign = judge_named(other, lead, "foreign")
    shared = judge_named(None, lead, "shared-one")

    def refused(field, **kwargs):
        values = {"project": project, "user": lead, "name": "c", "axes": one_axis(llm.pk), **kwargs}
        with pytest.raises(ValidationError) as caught:
            composite_create(**values)
        assert field in caught.value.message_dict, caught.value.message_dict
        return " ".join(caught.value.message_dict[field])

    assert "no judge" in refused("axes", axes=one_axis(999_999))
    # Another project's judge: the same answer as a missing one, by pk, id or name.
    for ref in (foreign.pk, str(foreign.public_id), "foreign"):
        assert "no judge" in refused("axes", axes=one_axis(ref))
    for weight in (0, -1, float("nan"), float("inf"), True, "2"):
        assert "weight" in refused("axes", axes=one_axis(llm.pk, weight=weight))
        assert "weight" in refused("axes", axes=one_axis(llm.pk, axis_weight=weight))
    assert "name" in refused("axes", axes=one_axis(llm.pk, name="  "))
    assert "another axis" in refused("axes", axes=one_axis(llm.pk, name="Helpful") + one_axis(llm.pk))
    assert "at least one scorer" in refused("axes", axes=[{"name": "a", "weight": 1, "scorers": []}])
    assert "at least one axis" in refused("axes", axes=[])
    twice = [{"name": "a", "weight": 1, "scorers": [{"judge": llm.pk, "weight": 1}, {"judge": "llm", "weight": 2}]}]
    assert "already" in refused("axes", axes=twice)
    assert "expected" in refused("axes", axes=[{"name": "a", "weight": 1, "scorers": [{"judge": llm.pk, "w": 1}]}])
    refused("normalisation", normalisation="minmax")
    refused("name", name="")
    assert not Composite.objects.exists()

    # Judges by pk, id or name; shared judges too; weights may be ints.
    scorers = [{"judge": str(llm.public_id)}, {"judge": "shared-one", "weight": 0.5}]
    made = composite_create(project=project, user=lead, name="c", normalisation="rank",
                            axes=[{"name": " a ", "weight": 2, "scorers": scorers}])  # fmt: skip
    assert made.axes == [{"name": "a", "weight": 2.0, "scorers": [{"judge": llm.pk, "weight": 1.0},
                                                                   {"judge": shared.pk, "weight": 0.5}]}]  # fmt: skip
    refused("name", name="c")  # unique per project
    assert composite_create(project=other, user=lead, name="c", axes=one_axis(foreign.pk)).project == other


@pytest.mark.django_db
def test_a_deleted_judge_counts_as_missing(stack):
    composite, pairs, llm, rm = stack
    rm_pk = rm.pk
    rm.delete()
    composite = composite_compute(composite=composite)
    got = scores(composite)
    assert set(got) == {pairs[i].pk for i in range(4)}
    assert all(set(axes) == {"helpful"} for _, axes in got.values())
    assert composite.stats["scorers"][str(rm_pk)]["pairs"] == 0


# ---------------------------------------------------------------------------------------------------------------
# pages and API

HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@pytest.mark.django_db
def test_a_lead_creates_computes_and_reads_a_composite_on_the_pages(stack, project, lead):
    _, pairs, llm, rm = stack
    Pair.objects.filter(pk=pairs[0].pk).update(response_a=HOSTILE)
    client = login(lead)
    token = csrf(client, reverse("judging:judges", args=[project.slug]))
    judges_page = client.get(reverse("judging:judges", args=[project.slug])).content.decode()
    assert reverse("judging:composites", args=[project.slug]) in judges_page
    new = reverse("judging:composite_new", args=[project.slug])
    page = client.get(new).content.decode()
    assert "harmless 2: rm-harmless × 1" in page  # the syntax, with an example
    bad = client.post(new, {"name": "x", "normalisation": "z", "axes": "helpful: nobody × 1"}, HTTP_X_CSRFTOKEN=token)
    assert bad.status_code == 200 and "no judge" in bad.content.decode()
    text = "helpful 1: llm × 1, rm × 3\nharmless 2: rm"
    response = client.post(new, {"name": "page-made", "normalisation": "z", "axes": text}, HTTP_X_CSRFTOKEN=token)
    made = Composite.objects.get(name="page-made")
    assert response.status_code == 302 and response["Location"].endswith(f"/composites/{made.public_id}/")
    assert made.axes == stack[0].axes and made.created_by == lead
    detail = reverse("judging:composite_detail", args=[project.slug, made.public_id])
    assert "not computed yet" in client.get(detail).content.decode()
    compute = reverse("judging:composite_compute", args=[project.slug, made.public_id])
    assert client.post(compute, HTTP_X_CSRFTOKEN=token).status_code == 302
    assert_expected(made, pairs)
    html = client.get(detail).content.decode()
    assert "composite-top" in html and "helpful" in html and "rm" in html
    assert "<script>alert" not in html and "<img src=x" not in html and "&lt;script&gt;alert" in html
    edit = reverse("judging:composite_edit", args=[project.slug, made.public_id])
    assert "helpful 1: llm × 1, rm × 3" in client.get(edit).content.decode()
    listing = client.get(reverse("judging:composites", args=[project.slug])).content.decode()
    assert "page-made" in listing and "hh" in listing


@pytest.mark.django_db
def test_the_api_lists_creates_computes_and_pages_scores(stack, project, lead):
    composite, pairs, llm, rm = stack
    api = APIClient()
    api.force_authenticate(lead)
    base = f"/api/v1/projects/{project.slug}/composites/"
    body = {"name": "api-made", "normalisation": "z",
            "axes": [{"name": "helpful", "weight": 1, "scorers": [{"judge": str(llm.public_id), "weight": 1},
                                                                  {"judge": str(rm.public_id), "weight": 3}]},
                     {"name": "harmless", "weight": 2, "scorers": [{"judge": "rm"}]}]}  # fmt: skip
    created = api.post(base, body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["axes"][0]["scorers"][1] == {"judge": str(rm.public_id), "name": "rm", "weight": 3.0}
    bad = api.post(base, {**body, "name": "bad", "axes": one_axis(str(rm.public_id), weight=0)}, format="json")
    assert bad.status_code == 400 and "axes" in bad.json()
    assert api.post(base, {**body, "name": "api-made"}, format="json").json() == {
        "name": ["The project already has a composite named api-made."]
    }
    assert {c["name"] for c in api.get(base).json()} == {"hh", "api-made"}
    computed = api.post(f"{base}{data['id']}/compute/")
    assert computed.status_code == 200 and computed.json()["pairs"] == 4
    page = api.get(f"{base}{data['id']}/scores/", {"order": "-value", "page_size": 2}).json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]
    top = page["results"][0]
    assert top["pair_id"] == pairs[0].pk and top["winner"] == "A" and top["value"] == pytest.approx(EXPECTED[0][0])
    last = api.get(f"{base}{data['id']}/scores/", {"order": "value"}).json()["results"][0]
    assert last["pair_id"] == pairs[2].pk and last["winner"] == "B"
    assert api.get(f"{base}{data['id']}/scores/", {"order": "nope"}).status_code == 400
    detail = api.get(f"{base}{data['id']}/").json()
    assert detail["summary"]["axes"][1]["pairs"] == 3 and detail["summary"]["top"][0]["pair_id"] == pairs[0].pk
    # top: the pairs preferring A, strongest first; bottom: those preferring B
    assert [r["pair_id"] for r in detail["summary"]["top"]] == [pairs[i].pk for i in (0, 1, 3)]
    assert [r["pair_id"] for r in detail["summary"]["bottom"]] == [pairs[2].pk]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["annotator", "outsider", "other_lead"])
def test_everything_is_404_for_all_but_the_projects_leads(stack, project, annotator, outsider, who):
    composite = stack[0]
    user = {"annotator": annotator, "outsider": outsider}.get(who)
    if who == "other_lead":
        user = UserFactory()
        member(ProjectFactory(), user, Membership.Role.LEAD)
    client = login(user)
    token = csrf(client)
    slug, cid = project.slug, composite.public_id
    for name, args in (("composites", [slug]), ("composite_new", [slug]), ("composite_detail", [slug, cid]),
                       ("composite_edit", [slug, cid])):  # fmt: skip
        assert client.get(reverse(f"judging:{name}", args=args)).status_code == 404, name
    compute = reverse("judging:composite_compute", args=[slug, cid])
    assert client.post(compute, HTTP_X_CSRFTOKEN=token).status_code == 404
    api = APIClient()
    api.force_authenticate(user)
    base = f"/api/v1/projects/{slug}/composites/"
    for url in (base, f"{base}{cid}/", f"{base}{cid}/scores/"):
        assert api.get(url).status_code == 404, url
    assert api.post(f"{base}{cid}/compute/").status_code == 404
    assert api.post(base, {"name": "x", "axes": []}, format="json").status_code == 404
    assert not CompositeScore.objects.exists()


@pytest.mark.django_db
def test_another_projects_composite_is_not_found(stack, lead):
    other = ProjectFactory()
    member(other, lead, Membership.Role.LEAD)
    api = APIClient()
    api.force_authenticate(lead)
    assert api.get(f"/api/v1/projects/{other.slug}/composites/{stack[0].public_id}/").status_code == 404
    assert api.get(f"/api/v1/projects/{other.slug}/composites/{uuid.uuid4()}/").status_code == 404
