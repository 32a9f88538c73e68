"""MinHash near-duplicate grouping: estimates track the true Jaccard similarity; groups are deterministic; batched
signatures equal one-text ones. Character 3-gram vectors equal scikit-learn's."""

import random

import numpy as np
import pyarrow as pa

from training.curation.near_duplicates import SHINGLE, near_duplicate_groups, signature, signatures


def jaccard(a: str, b: str) -> float:
    sa = {a[i : i + SHINGLE] for i in range(len(a) - SHINGLE + 1)}
    sb = {b[i : i + SHINGLE] for i in range(len(b) - SHINGLE + 1)}
    return len(sa & sb) / len(sa | sb)


def test_minhash_estimate_tracks_jaccard():
    rng = random.Random(1)
    words = [w for w in "the quick brown fox jumps over a lazy dog while seven wizards quietly hex".split()]
    errors = []
    for _ in range(40):
        a = " ".join(rng.choice(words) for _ in range(30))
        b = " ".join(w if rng.random() < 0.8 else rng.choice(words) for w in a.split())
        estimate = (signature(a) == signature(b)).mean()
        errors.append(abs(estimate - jaccard(a, b)))
    assert sum(errors) / len(errors) < 0.08  # 64 permutations: standard error ~0.06


def test_small_edits_group_and_different_prompts_do_not():
    texts = ["explain how tides work on earth, in detail please.", "explain how tides work on earth in detail, please.",
             "write a haiku about autumn rain.", "explain how vaccines work in the body."]  # fmt: skip
    labels = near_duplicate_groups(texts, 0.6)
    assert labels[0] == labels[1] and len({labels[0], labels[2], labels[3]}) == 3
    assert list(near_duplicate_groups(texts, 0.6)) == list(labels)  # deterministic
    assert len(set(near_duplicate_groups(texts, 0.99))) == 4


def _reference_signature(text: str) -> np.ndarray:
    """One text at a time, as the signatures were first computed."""
    from numpy.lib.stride_tricks import sliding_window_view

    from training.curation.near_duplicates import _A, _B, _POWERS, _PRIME

    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if len(data) < SHINGLE:
        data = np.concatenate([data, np.zeros(SHINGLE - len(data), dtype=np.uint64)])
    with np.errstate(over="ignore"):
        shingles = sliding_window_view(data, SHINGLE) @ _POWERS
    x = np.unique(shingles) & np.uint64(0xFFFFFFFF)
    return ((_A[:, None] * x[None, :] + _B[:, None]) % _PRIME).min(axis=1)


def _texts(n: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abc de\tFG\nhi  jkl.,!é漢字😀ΣΑς\u00a0\u2003x"
    return ["", " ", "a", "ab", "Σ", "ΟΔΟΣ ΑΣ", "Hello   World!", "xxx"] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(n)
    ]


def test_batched_signatures_are_the_one_text_signatures():
    texts = _texts(300)
    batch = signatures(texts)
    assert batch.dtype == np.uint32
    for text, row in zip(texts, batch, strict=True):
        assert row.tolist() == _reference_signature(text).tolist()


def test_groups_are_the_same_from_a_list_or_an_arrow_array():
    texts = sorted({"explain how tides work, in detail please.", "explain how tides work in detail, please.",
                    "write a haiku about autumn rain.", *_texts(200)})  # fmt: skip
    assert near_duplicate_groups(texts, 0.6).tolist() == near_duplicate_groups(pa.array(texts), 0.6).tolist()


def test_char_ngram_vectors_are_scikit_learns_to_the_last_bit():
    from sklearn.feature_extraction.text import HashingVectorizer

    from training.curation import char_ngrams

    hashing = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=2**18, alternate_sign=False)
    texts = _texts(600)
    ours, theirs = char_ngrams.vectors(texts).csr(), hashing.transform(texts)
    assert (ours.indptr == theirs.indptr).all() and (ours.indices == theirs.indices).all()
    assert (ours.data == theirs.data).all()
    a, b = texts[: len(texts) // 2], texts[len(texts) // 2 :]
    for x, y in ((a, b), (a, a), (a, [t + " " for t in a]), (a, [t.upper() for t in a])):
        expected = np.asarray(hashing.transform(x).multiply(hashing.transform(y)).sum(axis=1)).ravel()
        assert char_ngrams.rowwise_cosine(x, y).tolist() == expected.tolist()


def test_murmur3_matches_scikit_learn():
    from sklearn.utils import murmurhash3_32

    from training.curation.char_ngrams import murmur3

    rng = random.Random(5)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 12))) for _ in range(500)]
    words = np.zeros((len(keys), 12), dtype=np.uint8)
    for i, key in enumerate(keys):
        words[i, : len(key)] = list(key)
    hashes = murmur3(words.view("<u4").astype(np.uint32), np.array([len(k) for k in keys], dtype=np.uint32))
    assert hashes.tolist() == [murmurhash3_32(k, seed=0) for k in keys]


def _reference_groups(texts: list[str], threshold: float) -> list[int]:
    """Every signature in memory, each band's candidates checked and joined one band after the other: how the
    groups were first computed (before the signatures moved to a file)."""
    from training.curation.near_duplicates import BANDS, ROWS, _find

    n = len(texts)
    sigs, parent = signatures(texts), np.arange(n)
    for band in range(BANDS):
        keys = [tuple(row) for row in sigs[:, band * ROWS : (band + 1) * ROWS].tolist()]
        heads: dict[tuple, int] = {}
        for i, key in enumerate(keys):
            h = heads.setdefault(key, i)
            if h != i and (sigs[i] == sigs[h]).mean() >= threshold:
                a, b = _find(parent, h), _find(parent, i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return [_find(parent, i) for i in range(n)]


def test_groups_from_the_signature_file_are_the_in_memory_groups(monkeypatch):
    """Many near-duplicates (variants of a few templates), candidates checked a few at a time."""
    rng = random.Random(5)
    templates = ["explain how tides work on earth, in detail please", "write a haiku about autumn rain and wind",
                 "what is the capital of france and why", "list three prime numbers above one hundred"]  # fmt: skip
    texts = []
    for _ in range(400):
        words = rng.choice(templates).split()
        for _ in range(rng.randint(0, 3)):
            words[rng.randrange(len(words))] = rng.choice(["very", "the", "an", "really", "x"])
        texts.append(" ".join(words))
    texts += _texts(100)
    monkeypatch.setattr("training.curation.near_duplicates._CHECK_BATCH", 50)
    # groups of distinct texts at each threshold: one-word edits of a template are joined at 0.5 and 0.8; at 0.95 they
    # are too far apart, and only exact copies share a group
    distinct = len(set(texts))
    for threshold, joins in ((0.5, True), (0.8, True), (0.95, False)):
        labels = near_duplicate_groups(texts, threshold).tolist()
        assert labels == _reference_groups(texts, threshold)
        assert (len(set(labels)) < distinct) == joins, threshold
