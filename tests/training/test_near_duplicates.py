"""MinHash near-duplicate grouping: estimates track the true Jaccard similarity; groups are deterministic."""

import random

from training.near_duplicates import SHINGLE, near_duplicate_groups, signature


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
