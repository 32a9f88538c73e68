"""Reward models as scorers: a sequence-classification checkpoint scores each response on a ``gpu`` queue worker.
``scorer`` loads and scores (torch, worker only); ``engine`` turns scores into a judge run's verdicts."""
