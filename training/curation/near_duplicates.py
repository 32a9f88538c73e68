"""Near-duplicate texts at scale: MinHash signatures over character 5-grams and locality-sensitive hashing
(numpy only; linear in the number of texts, so a million prompts are fine).

Two texts are near-duplicates when the estimated Jaccard similarity of their 5-gram sets (the share of the 64
MinHash values they have in common) reaches the threshold. Candidates come from 16 bands of 4 values: texts that
agree on a whole band land in the same bucket; each candidate is then checked against the threshold and the checked
pairs are joined into groups (union-find). Hashing is seeded and deterministic across processes and machines.

Signatures are computed for a batch of texts at once (one array of all their 5-grams), as uint32 (the values are
below 2**31): 256 bytes per text. They are kept in a temporary file, band by band, not in memory: a million distinct
texts would take 256 MB (docs/PERFORMANCE.md, "Export").
"""

from __future__ import annotations

import os
import tempfile

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


_BAND_BYTES = ROWS * 4  # one text's values in one band
_CHECK_BATCH = 1_000_000  # candidate pairs checked at once


class _BandStore:
    """The signatures of ``n`` texts in an unnamed temporary file, band by band (band b's values of every text
    together), so memory holds one band (16 bytes a text) instead of every signature (256 bytes a text)."""

    def __init__(self, file, n: int):
        self.fd, self.n = file.fileno(), n

    def write(self, start: int, sigs: np.ndarray) -> None:
        for band in range(BANDS):
            data = np.ascontiguousarray(sigs[:, band * ROWS : (band + 1) * ROWS]).tobytes()
            os.pwrite(self.fd, data, (band * self.n + start) * _BAND_BYTES)

    def band(self, band: int) -> np.ndarray:
        """(n, ROWS) uint32: every text's values in this band."""
        size = self.n * _BAND_BYTES
        data = os.pread(self.fd, size, band * size)
        if len(data) != size:
            raise OSError("short read from the signature file")
        return np.frombuffer(data, dtype=np.uint32).reshape(self.n, ROWS)

    def agreeing(self, head: np.ndarray, member: np.ndarray) -> np.ndarray:
        """For each (head, member) pair, how many of the PERMUTATIONS values their signatures share."""
        same = np.zeros(len(head), dtype=np.int64)
        for band in range(BANDS):
            values = self.band(band)
            same += (values[member] == values[head]).sum(axis=1)
            del values
        return same


def _bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The texts that agree on a whole band share a bucket: (bucket head, member) for every member that is not its
    bucket's head, the head being the bucket's smallest index. ``keys``: (n, ROWS) values below 2**31."""
    n = len(keys)
    high = (keys[:, 0].astype(np.uint64) << np.uint64(31)) | keys[:, 1]  # the 4 values as two exact uint64 keys
    low = (keys[:, 2].astype(np.uint64) << np.uint64(31)) | keys[:, 3]
    order = np.lexsort((low, high))  # stable: a bucket's members in index order, the smallest first
    high, low = high[order], low[order]
    new = np.r_[True, (high[1:] != high[:-1]) | (low[1:] != low[:-1])]
    del high, low
    bucket_start = np.flatnonzero(new)
    sizes = np.diff(np.r_[bucket_start, n])
    head = np.repeat(order[bucket_start], sizes)  # each member's bucket head, in sorted order
    paired = head != order
    return head[paired], order[paired]


def near_duplicate_groups(texts, threshold: float) -> np.ndarray:
    """A group label per text (the smallest index in its group). ``texts``: a list of str or a pyarrow string
    array.

    Signatures are computed batch by batch and kept on disk, band by band (``_BandStore``); each band's buckets give
    candidate pairs, checked against the threshold on all PERMUTATIONS values, a million at a time. The groups are
    the connected components of the checked pairs, labelled by their smallest index, so the order the pairs are
    checked in does not matter."""
    n = len(texts)
    parent = np.arange(n)
    if n < 2:
        return parent
    with tempfile.TemporaryFile(prefix="arbiter-minhash-") as file:
        store = _BandStore(file, n)
        done = 0
        for part in _batches(texts, _BATCH):
            store.write(done, signatures(part))
            done += len(part)
        heads, members, waiting = [], [], 0
        for band in range(BANDS):
            head, member = _bucket_pairs(store.band(band))
            heads.append(head)
            members.append(member)
            waiting += len(head)
            if waiting < _CHECK_BATCH and band < BANDS - 1:
                continue
            head, member = np.concatenate(heads), np.concatenate(members)
            heads, members, waiting = [], [], 0
            pairs = np.unique(head.astype(np.int64) * n + member)  # a pair found by several bands, checked once
            head, member = np.divmod(pairs, n)
            similar = store.agreeing(head, member) >= threshold * PERMUTATIONS
            for a, b in zip(head[similar].tolist(), member[similar].tolist(), strict=True):
                a, b = _find(parent, a), _find(parent, b)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    while True:  # every root is the smallest index of its group: follow parents until they stop changing
        grand = parent[parent]
        if (grand == parent).all():
            return parent
        parent = grand
