"""The train/test split of an export: whole prompt groups go to one side, so no prompt (or near-same prompt) is in
both."""

from __future__ import annotations

import hashlib

import numpy as np

from ..curation.steps import Curated


def split_by_prompt(rows: Curated, *, test_fraction: float, seed: int) -> np.ndarray:
    """Which rows go to the test split (a mask). Whole prompt groups go to one side: groups are ordered by
    sha256(seed, group) and the first ones fill the test split up to ``test_fraction`` of the rows. No prompt (or
    near-same prompt) appears in both."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")
    groups, inverse, sizes = np.unique(rows.group, return_inverse=True, return_counts=True)
    digests = np.empty(len(groups), dtype="S32")
    for start in range(0, len(groups), 100_000):  # no list of a million bytes objects at once
        part = groups[start : start + 100_000].tolist()
        digests[start : start + len(part)] = [hashlib.sha256(f"{seed}:{g:016x}".encode()).digest() for g in part]
    order = np.argsort(digests, kind="stable")
    target = round(test_fraction * len(rows))
    taken_before = np.cumsum(sizes[order]) - sizes[order]
    test_groups = np.zeros(len(groups), dtype=bool)
    test_groups[order[taken_before < target]] = True
    return test_groups[inverse]
