"""Sent when an endpoint run (a judge run or a generation run) ends, whatever ended it, so work that waits on runs
(training's evaluations) moves on at once without this app knowing about it."""

from django.dispatch import Signal

run_ended = Signal()  # sender: the run's model class; run: the run
