"""Agreement figures against the reference implementations, on random data and edge cases."""

import json
import warnings

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

from annotation.imports.importer import pairs_import
from annotation.quality.agreement import (
    LABEL_SPACES,
    _alpha_from_counts,
    _bootstrap,
    _count_patterns,
    _fleiss_from_counts,
    _percent_from_counts,
    _resampled_figures,
    agreement_summary,
    cohen_pairwise,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
    rating_matrix,
)
from annotation.selectors import project_agreement
from tests.services import alpacaeval_pairs

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
def test_alpacaeval_kappa_matches_scikit_learn_on_the_raw_file(project, lead, annotator, outsider):
    pairs_import(project=project, path=alpacaeval_pairs(), fmt="pairs")
    report = project_agreement(project, n_boot=50)
    [pair] = report["pairwise_cohen_kappa"]
    # The raw file, read directly: 1.0 = A, 2.0 = B, 1.5 = tie. Rows that repeat an earlier row's prompt and both
    # responses are the same pair (the import keeps the first), and a null preference is no label.
    to_choice = {1.0: "A", 2.0: "B", 1.5: "tie"}
    seen, first, second = set(), [], []
    for line in alpacaeval_pairs().read_text().splitlines():
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


def random_labels(rng, *, n_items=80):
    """(item, annotator, choice) triples with the awkward cases in them: r10 and r11 always say "B" on the items
    they share (kappa undefined), r12 and r13 never share an item, r14 only says "tie" (nothing left of r14 in the
    decisive space). r00 to r09 answer at random, more often "A" or "B" than not."""
    triples = []
    for item in range(n_items):
        for r in rng.choice(10, size=rng.integers(1, 7), replace=False):
            triples.append((item, f"r{r:02d}", str(rng.choice(CHOICES, p=[0.35, 0.35, 0.2, 0.1]))))
        if item % 3 == 0:
            triples += [(item, "r10", "B"), (item, "r11", "B")]
        triples.append((item, "r12" if item % 2 else "r13", str(rng.choice(CHOICES))))
        if item % 4 == 0:
            triples.append((item, "r14", "tie"))
    return triples


@pytest.mark.parametrize("space", sorted(LABEL_SPACES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_pairwise_kappa_and_mean_equal_scikit_learn(space, seed):
    triples = random_labels(np.random.default_rng(seed))
    m = rating_matrix(*zip(*triples, strict=True), space=space)
    mapping = LABEL_SPACES[space]
    given = {(item, r): mapping[c] for item, r, c in triples if c in mapping}
    summary = agreement_summary(m, n_boot=20)
    got = {(p["annotator_a"], p["annotator_b"]): p for p in summary["pairwise_cohen_kappa"]}
    assert list(got) == sorted(got)  # annotator order: a before b, pairs in order
    expected_by_annotator = {r: [] for r in m.raters}
    for i, a in enumerate(m.raters):
        for b in m.raters[i + 1 :]:
            shared = sorted({item for item, r in given if r == a} & {item for item, r in given if r == b})
            if len(shared) < 2:
                assert (a, b) not in got
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # undefined kappa: scikit-learn warns and returns NaN
                expected = cohen_kappa_score([given[i, a] for i in shared], [given[i, b] for i in shared],
                                             labels=range(max(mapping.values()) + 1))  # fmt: skip
            assert got[a, b]["shared_items"] == len(shared)
            if np.isfinite(expected):
                assert got[a, b]["kappa"] == pytest.approx(expected, abs=1e-12)
                expected_by_annotator[a].append(expected)
                expected_by_annotator[b].append(expected)
            else:
                assert got[a, b]["kappa"] is None
    assert got["r10", "r11"]["kappa"] is None and ("r12", "r13") not in got
    assert ("r14" in m.raters) == (space != "decisive")
    for r, values in expected_by_annotator.items():
        mean = summary["mean_kappa_by_annotator"][r]
        assert mean == (pytest.approx(np.mean(values), abs=1e-12) if values else None)


count_rows = st.integers(3, 4).map(lambda k: st.lists(st.integers(0, 5), min_size=k, max_size=k))
count_tables = count_rows.flatmap(lambda row: st.lists(row.filter(lambda r: sum(r) >= 2), min_size=2, max_size=40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=count_tables, seed=st.integers(0, 2**32 - 1))
def test_resampled_figures_equal_the_figures_of_the_resample(table, seed):
    """The bootstrap computes each resample from how often it drew each distinct count vector; that must equal the
    figures of the resampled items themselves, alpha included (the krippendorff package on the same counts)."""
    counts = np.array(table)
    patterns, frequency = _count_patterns(counts)
    assert frequency.sum() == len(counts) and len(np.unique(patterns, axis=0)) == len(patterns)
    rng = np.random.default_rng(seed)
    resamples = [counts[rng.integers(0, len(counts), len(counts))] for _ in range(5)] + [counts]
    weights = np.array([[(r == p).all(axis=1).sum() for p in patterns] for r in resamples])
    figures = _resampled_figures(patterns, weights)
    for i, resample in enumerate(resamples):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alpha = krippendorff.alpha(value_counts=resample, level_of_measurement="nominal")
        for name, expected in (("fleiss_kappa", _fleiss_from_counts(resample)), ("krippendorff_alpha", alpha),
                               ("percent_agreement", _percent_from_counts(resample))):  # fmt: skip
            got = figures[name][i]
            if expected is None or not np.isfinite(expected):
                assert np.isnan(got)
            else:
                assert got == pytest.approx(expected, abs=1e-12)
        assert _alpha_from_counts(resample) == (pytest.approx(alpha, abs=1e-12) if np.isfinite(alpha) else None)


def test_bootstrap_matches_resampling_items_one_by_one():
    """Drawing how many times each count vector comes up (multinomial) is the same distribution as drawing items:
    both intervals, on 400 resamples each, agree closely and contain the point estimate."""
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 3, 400)
    labels = [(item, f"r{r}", CHOICES[t if rng.random() < 0.7 else rng.integers(0, 4)])
              for item, t in enumerate(truth) for r in rng.choice(8, size=3, replace=False)]  # fmt: skip
    m = rating_matrix(*zip(*labels, strict=True))
    counts = np.zeros((len(m.items), m.n_categories), dtype=np.int64)
    np.add.at(counts, (m.item_idx, m.label_codes), 1)
    intervals = _bootstrap(counts, n_boot=400, seed=0)
    one_by_one = [_fleiss_from_counts(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(400)]
    lo, hi = np.percentile(one_by_one, [2.5, 97.5])
    assert intervals["fleiss_kappa"] == [pytest.approx(lo, abs=0.01), pytest.approx(hi, abs=0.01)]
    for name, (lo, hi) in intervals.items():
        assert lo < agreement_summary(m, n_boot=0)[name]["value"] < hi
    assert _bootstrap(counts, n_boot=50, seed=3) == _bootstrap(counts, n_boot=50, seed=3)  # reproducible
    assert _bootstrap(counts[:1], n_boot=50, seed=3)["fleiss_kappa"] == [None, None]  # one item: no interval


def test_last_label_wins_and_the_dense_view():
    m = rating_matrix([7, 7, 7, 9], ["b", "a", "b", "a"], ["A", "B", "tie", "skip"])
    assert m.raters == ["a", "b"] and list(m.items) == [7]
    assert m.codes.tolist() == [[1, 2]]  # b's later "tie" replaced its "A"; "skip" is no label
