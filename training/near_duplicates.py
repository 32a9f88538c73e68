"""Near-duplicate texts at scale: MinHash signatures over character 5-grams and locality-sensitive hashing
(numpy only; linear in the number of texts, so a million prompts are fine).

Two texts are near-duplicates when the estimated Jaccard similarity of their 5-gram sets (the share of the 64
MinHash values they have in common) reaches the threshold. Candidates come from 16 bands of 4 values: texts that
agree on a whole band land in the same bucket; each candidate is then checked against the threshold and the checked
pairs are joined into groups (union-find). Hashing is seeded and deterministic across processes and machines.

Signatures are computed for a batch of texts at once (one array of all their 5-grams) and kept as uint32 (the
values are below 2**31): 256 bytes per text, so a million distinct texts take 256 MB (docs/PERFORMANCE.md).
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
_BATCH = 10_000  # texts per signature batch


def signature(text: str) -> np.ndarray:
    return signatures([text])[0]


def signatures(texts: list[str]) -> np.ndarray:
    """(len(texts), PERMUTATIONS) uint32: for each permutation, the minimum over the text's 5-grams (the UTF-8
    bytes as a base-257 number, wrapping modulo 2**64, low 32 bits) of (a·x + b) mod (2**31 − 1). A text shorter
    than 5 bytes is padded with zero bytes."""
    if not texts:
        return np.zeros((0, PERMUTATIONS), dtype=np.uint32)
    encoded = [t.encode("utf-8") for t in texts]
    padded = [e if len(e) >= SHINGLE else e + b"\0" * (SHINGLE - len(e)) for e in encoded]
    lengths = np.fromiter((len(e) for e in padded), dtype=np.int64, count=len(padded))
    data = np.frombuffer(b"".join(padded), dtype=np.uint8).astype(np.uint64)
    with np.errstate(over="ignore"):  # the rolling hash wraps modulo 2**64 on purpose
        windows = sliding_window_view(data, SHINGLE) @ _POWERS
    # the windows that lie inside one text: text i's start at offset starts[i], count lengths[i] - SHINGLE + 1
    counts = lengths - SHINGLE + 1
    first = np.cumsum(counts) - counts
    starts = np.cumsum(lengths) - lengths
    x = windows[np.repeat(starts - first, counts) + np.arange(counts.sum())] & np.uint64(0xFFFFFFFF)
    out = np.empty((len(texts), PERMUTATIONS), dtype=np.uint32)
    hashed = np.empty_like(x)
    for k in range(PERMUTATIONS):
        np.multiply(x, _A[k], out=hashed)
        hashed += _B[k]
        hashed %= _PRIME
        out[:, k] = np.minimum.reduceat(hashed, first)
    return out


def _batches(texts, size: int):
    """Slices of a list or of a pyarrow array, as lists of str."""
    for start in range(0, len(texts), size):
        part = texts[start : start + size]
        yield part if isinstance(part, list) else part.to_pylist()


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def near_duplicate_groups(texts, threshold: float) -> np.ndarray:
    """A group label per text (the smallest index in its group). ``texts``: a list of str or a pyarrow string
    array."""
    n = len(texts)
    parent = np.arange(n)
    if n < 2:
        return parent
    sigs = np.empty((n, PERMUTATIONS), dtype=np.uint32)
    done = 0
    for part in _batches(texts, _BATCH):
        sigs[done : done + len(part)] = signatures(part)
        done += len(part)
    for band in range(BANDS):
        keys = sigs[:, band * ROWS : (band + 1) * ROWS]  # a band's 4 values (< 2**31 each) as two exact uint64 keys
        high = (keys[:, 0].astype(np.uint64) << np.uint64(31)) | keys[:, 1]
        low = (keys[:, 2].astype(np.uint64) << np.uint64(31)) | keys[:, 3]
        order = np.lexsort((low, high))  # stable: a bucket's members in index order, the smallest first
        new = np.r_[True, (high[order][1:] != high[order][:-1]) | (low[order][1:] != low[order][:-1])]
        bucket_start = np.flatnonzero(new)
        sizes = np.diff(np.r_[bucket_start, n])
        head = np.repeat(order[bucket_start], sizes)  # each member's bucket head, in sorted order
        member = order
        pairs = head != member
        head, member = head[pairs], member[pairs]
        for start in range(0, len(head), 20_000):  # every member checked against its head, 20,000 at a time
            h, m = head[start : start + 20_000], member[start : start + 20_000]
            similar = (sigs[m] == sigs[h]).mean(axis=1) >= threshold
            for a, b in zip(h[similar].tolist(), m[similar].tolist(), strict=True):
                a, b = _find(parent, a), _find(parent, b)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    while True:  # every root is the smallest index of its group: follow parents until they stop changing
        grand = parent[parent]
        if (grand == parent).all():
            return parent
        parent = grand
