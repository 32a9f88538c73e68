"""Near-duplicate texts at scale: MinHash signatures over character 5-grams and locality-sensitive hashing
(numpy only; linear in the number of texts, so a million prompts are fine).

Two texts are near-duplicates when the estimated Jaccard similarity of their 5-gram sets (the share of the 64
MinHash values they have in common) reaches the threshold. Candidates come from 16 bands of 4 values: texts that
agree on a whole band land in the same bucket; each candidate is then checked against the threshold and the checked
pairs are joined into groups (union-find). Hashing is seeded and deterministic across processes and machines.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SHINGLE = 5
PERMUTATIONS = 64
BANDS, ROWS = 16, 4
_PRIME = np.uint64((1 << 31) - 1)
_rng = np.random.default_rng(20261122)
_A = _rng.integers(1, (1 << 31) - 1, PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, (1 << 31) - 1, PERMUTATIONS, dtype=np.uint64)
_POWERS = np.array([257**k for k in range(SHINGLE - 1, -1, -1)], dtype=np.uint64)


def signature(text: str) -> np.ndarray:
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if len(data) < SHINGLE:
        data = np.concatenate([data, np.zeros(SHINGLE - len(data), dtype=np.uint64)])
    with np.errstate(over="ignore"):  # the rolling hash wraps modulo 2**64 on purpose
        shingles = sliding_window_view(data, SHINGLE) @ _POWERS
    x = np.unique(shingles) & np.uint64(0xFFFFFFFF)
    return ((_A[:, None] * x[None, :] + _B[:, None]) % _PRIME).min(axis=1)


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def near_duplicate_groups(texts: list[str], threshold: float) -> np.ndarray:
    """A group label per text (the smallest index in its group)."""
    n = len(texts)
    parent = np.arange(n)
    if n < 2:
        return parent
    sigs = np.stack([signature(t) for t in texts])
    for band in range(BANDS):
        keys = sigs[:, band * ROWS : (band + 1) * ROWS]
        _, bucket = np.unique(keys, axis=0, return_inverse=True)
        order = np.argsort(bucket, kind="stable")
        starts = np.flatnonzero(np.diff(bucket[order], prepend=-1))
        sizes = np.diff(np.append(starts, n))
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
            members = order[start : start + size]
            head = members[0]
            similar = (sigs[members[1:]] == sigs[head]).mean(axis=1) >= threshold
            for other in members[1:][similar]:
                a, b = _find(parent, int(head)), _find(parent, int(other))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.array([_find(parent, i) for i in range(n)])
