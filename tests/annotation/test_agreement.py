"""Agreement figures against the reference implementations, on random data and edge cases."""

import json
import warnings
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from annotation.quality.agreement import (
    LABEL_SPACES,
    cohen_pairwise,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
    rating_matrix,
)
from annotation.selectors import project_agreement
from annotation.services.imports import pairs_import

ALPACA = Path(__file__).resolve().parents[3] / "shared" / "data" / "alpacaeval_pairs.jsonl"
CHOICES = ["A", "B", "tie", "both_bad"]


def triples(codes):
    """Random label table -> (item, annotator, choice) triples; None = not labelled."""
    out = ([], [], [])
    for i, row in enumerate(codes):
        for r, c in enumerate(row):
            if c is not None:
                out[0].append(i)
                out[1].append(f"r{r}")
                out[2].append(CHOICES[c])
    return out


tables = st.integers(2, 5).flatmap(
    lambda n_raters: st.lists(
        st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=n_raters, max_size=n_raters), min_size=2, max_size=25
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables, space=st.sampled_from(sorted(LABEL_SPACES)))
def test_pairwise_kappa_equals_scikit_learn(table, space):
    items, raters, choices = triples(table)
    m = rating_matrix(items, raters, choices, space=space)
    mapping = LABEL_SPACES[space]
    by_pair = {(p["annotator_a"], p["annotator_b"]): p for p in cohen_pairwise(m)}
    for a in m.raters:
        for b in m.raters:
            if a >= b:
                continue
            shared = [
                (mapping[CHOICES[row[int(a[1:])]]], mapping[CHOICES[row[int(b[1:])]]])
                for row in table
                if row[int(a[1:])] is not None and row[int(b[1:])] is not None
                and CHOICES[row[int(a[1:])]] in mapping and CHOICES[row[int(b[1:])]] in mapping
            ]  # fmt: skip
            if len(shared) < 2:
                assert (a, b) not in by_pair  # annotators without shared items get no kappa
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # undefined kappa: scikit-learn warns and returns NaN
                expected = cohen_kappa_score(
                    [x for x, _ in shared], [y for _, y in shared], labels=range(max(mapping.values()) + 1)
                )
            got = by_pair[(a, b)]
            assert got["shared_items"] == len(shared)
            if np.isfinite(expected):
                assert got["kappa"] == pytest.approx(expected, abs=1e-12)
            else:
                assert got["kappa"] is None


@settings(max_examples=150, deadline=None)
@given(
    n_raters=st.integers(2, 6),
    rows=st.lists(st.lists(st.integers(0, 3), min_size=6, max_size=6), min_size=2, max_size=30),
)
def test_fleiss_equals_statsmodels_on_complete_data(n_raters, rows):
    table = [row[:n_raters] for row in rows]
    m = rating_matrix(*triples(table), space="full")
    counts = np.zeros((len(table), 4))
    for i, row in enumerate(table):
        for c in row:
            counts[i, c] += 1
    with np.errstate(all="ignore"):
        expected = statsmodels_fleiss(counts)
    got = fleiss_kappa(m)
    if np.isfinite(expected):
        assert got == pytest.approx(expected, abs=1e-12)
    else:
        assert got is None


@settings(max_examples=150, deadline=None)
@given(table=tables)
def test_alpha_equals_krippendorff_package(table):
    m = rating_matrix(*triples(table), space="full")
    data = np.array([[np.nan if c is None else float(c) for c in row] for row in table]).T
    enough = (~np.isnan(data)).sum(axis=0) >= 2
    values = data[:, enough]
    got = krippendorff_alpha(m)
    if enough.sum() == 0 or len(np.unique(values[~np.isnan(values)])) < 2:
        assert got is None
        return
    expected = krippendorff.alpha(reliability_data=values, level_of_measurement="nominal")
    assert got == pytest.approx(expected, abs=1e-12)


def test_edge_cases():
    # one category only: kappa and alpha are undefined, agreement is total
    m = rating_matrix([1, 1, 2, 2], ["a", "b", "a", "b"], ["A", "A", "A", "A"])
    assert cohen_pairwise(m)[0]["kappa"] is None
    assert krippendorff_alpha(m) is None and fleiss_kappa(m) is None
    assert percent_agreement(m) == 1.0
    # all ties: in the decisive space nothing is left
    m = rating_matrix([1, 1, 2, 2], ["a", "b", "a", "b"], ["tie"] * 4, space="decisive")
    assert m.codes.shape == (0, 0) and percent_agreement(m) is None and cohen_pairwise(m) == []
    # no shared items: no pairwise kappa, no project figure
    m = rating_matrix([1, 2], ["a", "b"], ["A", "B"])
    assert cohen_pairwise(m) == [] and fleiss_kappa(m) is None
    # tie and both-bad are one category by default, two in the full space
    m = rating_matrix([1, 1, 2, 2, 3, 3], ["a", "b"] * 3, ["tie", "both_bad", "A", "A", "B", "B"])
    assert percent_agreement(m) == 1.0
    assert percent_agreement(rating_matrix([1, 1], ["a", "b"], ["tie", "both_bad"], space="full")) == 0.0


@pytest.mark.django_db
@pytest.mark.skipif(not ALPACA.exists(), reason="../shared/data/alpacaeval_pairs.jsonl is not present")
def test_alpacaeval_kappa_matches_scikit_learn_on_the_raw_file(project, lead, annotator, outsider):
    pairs_import(project=project, path=ALPACA, fmt="pairs")
    report = project_agreement(project, n_boot=50)
    [pair] = report["pairwise_cohen_kappa"]
    # The raw file, read directly: 1.0 = A, 2.0 = B, 1.5 = tie. Rows that repeat an earlier row's prompt and both
    # responses are the same pair (the import keeps the first), and a null preference is no label.
    to_choice = {1.0: "A", 2.0: "B", 1.5: "tie"}
    seen, first, second = set(), [], []
    for line in ALPACA.read_text().splitlines():
        row = json.loads(line)
        key = (row["prompt"], *sorted([row["response_a"], row["response_b"]]))
        if key in seen:
            continue
        seen.add(key)
        prefs = {lab["annotator"]: lab["preference"] for lab in row["labels"]}
        a, b = prefs.get("alpaca_eval_cot_gpt4_turbo_fn"), prefs.get("alpaca_eval_gpt4_turbo_fn")
        if a is not None and b is not None:
            first.append(to_choice[a])
            second.append(to_choice[b])
    expected = cohen_kappa_score(first, second)
    assert pair["shared_items"] == len(first)
    assert pair["kappa"] == pytest.approx(expected, abs=1e-12)
    assert report["krippendorff_alpha"]["ci95"][0] <= report["krippendorff_alpha"]["value"]

    # the same figures through the API (leads only) and the command
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    body = client.get("/api/v1/projects/demo/quality/").json()
    assert body["pairwise_cohen_kappa"][0]["kappa"] == pytest.approx(expected, abs=1e-12)
    for user in (annotator, outsider):
        other = APIClient()
        other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        assert other.get("/api/v1/projects/demo/quality/").status_code == 404
    assert client.get("/api/v1/projects/demo/quality/?space=nonsense").status_code == 400


@pytest.mark.django_db
def test_project_quality_command(project, capsys):
    import io

    from annotation.models import Label
    from tests.factories import make_pairs

    pairs = make_pairs(project, 3)
    for pair, (x, y) in zip(pairs, [("A", "A"), ("B", "B"), ("A", "tie")], strict=True):
        Label.objects.create(project=project, pair=pair, source="external", external_annotator="x", choice=x)
        Label.objects.create(project=project, pair=pair, source="external", external_annotator="y", choice=y)
    out = io.StringIO()
    call_command("project_quality", "demo", "--bootstrap", "20", stdout=out)
    text = out.getvalue()
    assert "3 pairs with 2+ labels" in text and "kappa imported:x ~ imported:y" in text
    out = io.StringIO()
    call_command("project_quality", "demo", "--json", "--space", "decisive", stdout=out)
    report = json.loads(out.getvalue())
    assert report["label_space"] == "decisive" and report["items_with_two_or_more_labels"] == 2
