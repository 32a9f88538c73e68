"""Character 3-gram count vectors, exactly as scikit-learn's ``HashingVectorizer(analyzer="char_wb",
ngram_range=(3, 3), n_features=2**18, alternate_sign=False)`` makes them (l2-normalised), but vectorised with numpy:
the vectoriser loops in Python over every n-gram of every text (~70 µs per response on the benchmark machine).

``char_wb`` lower-cases a text, splits it into words on white space and takes the 3-grams of each word padded with
one space on both sides. In " word1 word2 " (words joined by single spaces, one space around) those are exactly the
3-character windows whose middle character is not a space, and a window across two texts never has a non-space
middle either, so one string holds a whole batch. Each n-gram's UTF-8 bytes are hashed with MurmurHash3 (x86, 32
bit, seed 0), the feature is |hash| mod 2**18, and the counts of a text are divided by their l2 norm, the sums taken
in the vectoriser's order so the figures are the same to the last bit (tests/training/test_near_duplicates.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FEATURES = 2**18
_BATCH = 2_048  # texts hashed at a time: (text, feature) keys fit in 32 bits, temporaries stay small
_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
_INT_MIN_FEATURE = (2147483647 - (N_FEATURES - 1)) % N_FEATURES  # scikit-learn's index for a hash of -2**31


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix(k: np.ndarray) -> np.ndarray:
    k = k * _C1
    return _rotl(k, 15) * _C2


def murmur3(words: np.ndarray, length: np.ndarray) -> np.ndarray:
    """MurmurHash3_x86_32 (seed 0) of keys of at most 12 bytes, as int32. ``words``: (n, 3) uint32, each key's bytes
    little-endian and zero past its ``length``."""
    with np.errstate(over="ignore"):
        h = np.zeros(len(length), dtype=np.uint32)
        blocks = length // 4
        for k in range(3):
            full = blocks > k
            if full.any():
                mixed = _rotl(h ^ _mix(words[:, k]), 13) * np.uint32(5) + np.uint32(0xE6546B64)
                h = np.where(full, mixed, h)
        tail = (length % 4) > 0
        if tail.any():
            last = words[np.arange(len(length)), np.minimum(blocks, 2)]
            h = np.where(tail, h ^ _mix(last), h)
        h ^= length.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h.view(np.int32)


def _features(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, feature) of every char_wb 3-gram of the texts, in text order."""
    prepared = [" " + " ".join(t.lower().split()) + " " for t in texts]
    ends = np.cumsum([len(p) for p in prepared])
    joined = "".join(prepared)
    if joined.isascii():
        data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        start = np.flatnonzero(data[1:-1] != 32)  # windows [p, p + 3) with a non-space middle
        words = np.zeros((len(start), 3), dtype=np.uint32)
        words[:, 0] = data[start] | (data[start + 1].astype(np.uint32) << 8) | (data[start + 2].astype(np.uint32) << 16)
        length = np.full(len(start), 3, dtype=np.uint32)
    else:
        chars = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        width = 1 + (chars >= 0x80) + (chars >= 0x800) + (chars >= 0x10000)
        offset = np.r_[0, np.cumsum(width)]  # byte offset of each character, and the end
        data = np.frombuffer(joined.encode("utf-8") + bytes(12), dtype=np.uint8)
        start = np.flatnonzero(chars[1:-1] != 32)
        first = offset[start]
        length = (offset[start + 3] - first).astype(np.uint32)
        gathered = data[first[:, None] + np.arange(12)]
        gathered[np.arange(12)[None, :] >= length[:, None]] = 0
        words = np.ascontiguousarray(gathered).view("<u4").astype(np.uint32)
    h = murmur3(words, length).astype(np.int64)
    feature = np.where(h == -(2**31), _INT_MIN_FEATURE, np.abs(h) % N_FEATURES)
    row = np.searchsorted(ends, start, side="right")
    return row, feature


@dataclass(frozen=True)
class Vectors:
    """l2-normalised count vectors of a batch of texts in CSR form: text i's features are
    ``feature[indptr[i]:indptr[i + 1]]`` (ascending) with values ``value[...]``."""

    indptr: np.ndarray
    feature: np.ndarray
    value: np.ndarray

    def csr(self):
        import scipy.sparse

        return scipy.sparse.csr_matrix((self.value, self.feature, self.indptr), shape=(len(self.indptr) - 1,
                                                                                       N_FEATURES))  # fmt: skip


def vectors(texts: list[str]) -> Vectors:
    parts = [_vectors(texts[start : start + _BATCH]) for start in range(0, len(texts), _BATCH)]
    if len(parts) == 1:
        return parts[0]
    sizes = np.cumsum([0] + [p.indptr[-1] for p in parts[:-1]])
    return Vectors(
        indptr=np.concatenate([[0]] + [p.indptr[1:] + s for p, s in zip(parts, sizes, strict=True)]),
        feature=np.concatenate([p.feature for p in parts]),
        value=np.concatenate([p.value for p in parts]),
    )


def _vectors(texts: list[str]) -> Vectors:
    row, feature = _features(texts)
    keys = np.sort((row.astype(np.uint32) << np.uint32(18)) | feature.astype(np.uint32))
    new = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, dtype=bool)
    first = np.flatnonzero(new)
    counts = np.diff(np.r_[first, len(keys)]).astype(np.float64)
    key = keys[first]
    row = (key >> np.uint32(18)).astype(np.int64)
    # the vectoriser's l2 norm: a sequential sum of squares per text (bincount adds in order), then one division
    norms = np.sqrt(np.bincount(row, weights=counts * counts, minlength=len(texts)))
    return Vectors(
        indptr=np.r_[0, np.cumsum(np.bincount(row, minlength=len(texts)))],
        feature=(key & np.uint32(N_FEATURES - 1)).astype(np.int32),
        value=counts / norms[row] if len(row) else counts,
    )


def rowwise_cosine(a: list[str], b: list[str]) -> np.ndarray:
    """Cosine similarity of the char_wb 3-gram counts of a[i] and b[i]: the dot product of the normalised vectors,
    summed as scipy sums a sparse row (np.add.reduceat over the products in feature order)."""
    out = np.zeros(len(a))
    for start in range(0, len(a), _BATCH):
        x, y = vectors(a[start : start + _BATCH]), vectors(b[start : start + _BATCH])
        x_row = np.repeat(np.arange(len(x.indptr) - 1), np.diff(x.indptr))
        y_row = np.repeat(np.arange(len(y.indptr) - 1), np.diff(y.indptr))
        x_key = (x_row << 18) | x.feature
        y_key = (y_row << 18) | y.feature
        pos = np.minimum(np.searchsorted(x_key, y_key), max(len(x_key) - 1, 0))
        both = x_key[pos] == y_key if len(x_key) else np.zeros(len(y_key), dtype=bool)
        products = x.value[pos[both]] * y.value[both]
        rows = y_row[both]
        if len(rows):
            run = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            out[start + rows[run]] = np.add.reduceat(products, run)
    return out
