"""The text steps of curation (training/curation/steps.py): near-identical responses, prompt groups, duplicate pairs.

Texts are read in batches through a text reader (training.curation.texts.pair_text_reader) and never all at once:
- responses: cosine similarity of character 3-gram counts (scikit-learn's hashed ``char_wb`` vectors, computed by
  training/curation/char_ngrams.py), batch by batch;
- prompts: normalised (lower case, runs of white space as one space); exact duplicates share a group, and near-same
  ones (training.curation.near_duplicates, MinHash over the distinct prompts, kept as one compact Arrow string
  column) are joined. A group's key is the first 16 hex digits of the sha256 of its smallest normalised prompt, so
  keys are stable across runs; without near-same prompts that is each prompt's own hash, and no prompt text is kept;
- duplicate pairs: only groups with more than one row are compared, so only those rows' responses are read.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import char_ngrams
from .near_duplicates import near_duplicate_groups

_SPACE = re.compile(r"\s+")
_DENSE_GROUP = 2_000  # larger prompt groups are compared row by row against the rows kept


def rowwise_cosine(a: list[str], b: list[str]) -> np.ndarray:
    """Cosine similarity of character 3-gram counts, a[i] against b[i] (training/curation/char_ngrams.py)."""
    return char_ngrams.rowwise_cosine(a, b)


def response_similarity(texts, pair_ids: np.ndarray) -> np.ndarray:
    """rowwise_cosine(response A, response B) of each pair, in the order of ``pair_ids`` (sorted)."""
    out = [np.zeros(0)]
    for _, batch in texts(pair_ids, ("response_a", "response_b")):
        out.append(rowwise_cosine(batch["response_a"], batch["response_b"]))
    return np.concatenate(out)


def normalise(texts: list[str]) -> list[str]:
    """``" ".join(text.lower().split())`` for each text, through one lower() and one regex pass per batch (the NUL
    separator is neither white space nor cased, so no text sees its neighbours)."""
    joined = "\0".join(texts)
    if "\0" in "".join(texts) or not texts:
        return [_SPACE.sub(" ", t.strip().lower()) for t in texts]
    return [t.strip() for t in _SPACE.sub(" ", joined.lower()).split("\0")]


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")  # the first 16 hex digits


def exact_keys(normalised: list[str]) -> np.ndarray:
    """Each normalised prompt's own key (uint64): the group key it has when no other prompt is near it."""
    return np.fromiter((_key(t) for t in normalised), dtype=np.uint64, count=len(normalised))


def group_keys(normalised: list[str], threshold: float) -> np.ndarray:
    """A group key (uint64) per normalised prompt; see the module docstring."""
    return _group_keys([pa.array(normalised, pa.large_string())], exact_keys(normalised), threshold)


def _group_keys(parts: list[pa.Array], keys: np.ndarray, threshold: float) -> np.ndarray:
    """group_keys of prompts given as Arrow string chunks (in order) and their exact_keys. ``parts`` is emptied, so
    that once the distinct prompts are taken no other copy of the texts is left.

    Exact duplicates are found by their keys (64 bits of sha256), so a threshold of 1 needs no text at all. Below
    1, the distinct prompts (one per key) are sorted (by code point) and grouped by MinHash; each prompt takes the
    key of its group's first prompt."""
    if threshold >= 1.0 or not len(keys):
        return keys
    values = pa.chunked_array(parts, pa.large_string())
    parts.clear()
    distinct_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    distinct = values.take(first)
    del values
    order = pc.sort_indices(distinct).to_numpy()  # byte order of UTF-8 = code point order = Python's order
    distinct = distinct.take(order)
    labels = near_duplicate_groups(distinct, threshold)
    del distinct
    sorted_position = np.empty(len(order), dtype=np.int64)
    sorted_position[order] = np.arange(len(order))
    return distinct_keys[order][labels][sorted_position[inverse]]


def prompt_groups(prompts: list[str], threshold: float) -> list[str]:
    """A group key per prompt (16 hex digits): exact duplicates after normalisation always share one; near-same
    prompts (estimated Jaccard similarity of character 5-grams ≥ threshold, training.curation.near_duplicates) are
    joined too."""
    return [f"{k:016x}" for k in group_keys(normalise(prompts), threshold).tolist()]


def prompt_group_keys(texts, pair_ids: np.ndarray, threshold: float) -> np.ndarray:
    """group_keys of each pair's rendered prompt, in the order of ``pair_ids`` (sorted). The normalised prompts are
    kept (as compact Arrow strings) only when near-same prompts are looked for (``threshold`` below 1)."""
    keys, parts = [np.zeros(0, dtype=np.uint64)], []
    for _, batch in texts(pair_ids, ("prompt_text",)):
        normalised = normalise(batch["prompt_text"])
        keys.append(exact_keys(normalised))
        if threshold < 1.0:
            parts.append(pa.array(normalised, pa.large_string()))
    return _group_keys(parts, np.concatenate(keys), threshold)


def duplicate_pairs(texts, pair_ids: np.ndarray, swap: np.ndarray, group: np.ndarray, threshold: float) -> np.ndarray:
    """Rows given in the deciding order (larger |margin| first, then lower pair id): True for a row whose chosen and
    rejected responses are both at least ``threshold`` similar to those of an earlier row of its group that was
    kept."""
    duplicate = np.zeros(len(pair_ids), dtype=bool)
    _, inverse, counts = np.unique(group, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse] > 1)
    if not len(shared):
        return duplicate
    by_id = shared[np.argsort(pair_ids[shared])]
    a, b = [], []
    for _, batch in texts(pair_ids[by_id], ("response_a", "response_b")):
        a.extend(batch["response_a"])
        b.extend(batch["response_b"])
    vectors_a, vectors_b = char_ngrams.vectors(a).csr(), char_ngrams.vectors(b).csr()  # l2-normalised, by pair id
    del a, b
    row_of = np.empty(len(pair_ids), dtype=np.int64)
    row_of[by_id] = np.arange(len(by_id))
    members = shared[np.argsort(inverse[shared], kind="stable")]  # by group, each in the deciding order
    starts = np.flatnonzero(np.r_[True, inverse[members][1:] != inverse[members][:-1]])
    for chunk in np.split(members, starts[1:]):
        rows, flip = row_of[chunk], swap[chunk]
        chosen = _stack(vectors_a[rows], vectors_b[rows], flip)
        rejected = _stack(vectors_a[rows], vectors_b[rows], ~flip)
        if len(chunk) <= _DENSE_GROUP:
            near = np.minimum((chosen @ chosen.T).toarray(), (rejected @ rejected.T).toarray()) >= threshold
        kept: list[int] = []
        for i in range(len(chunk)):
            if kept and len(chunk) <= _DENSE_GROUP:
                hit = near[i, kept].any()
            elif kept:  # a very large group: this row against the rows kept so far
                to_chosen = (chosen[kept] @ chosen[i].T).toarray().ravel()
                to_rejected = (rejected[kept] @ rejected[i].T).toarray().ravel()
                hit = (np.minimum(to_chosen, to_rejected) >= threshold).any()
            else:
                hit = False
            if hit:
                duplicate[chunk[i]] = True
            else:
                kept.append(i)
    return duplicate


def _stack(a, b, take_b: np.ndarray):
    """Row i of ``b`` where ``take_b[i]``, else row i of ``a`` (sparse matrices of the same shape)."""
    import scipy.sparse

    return scipy.sparse.diags(~take_b * 1.0) @ a + scipy.sparse.diags(take_b * 1.0) @ b
