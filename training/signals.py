"""Signals training sends as its work ends, so what waits on that work (a campaign's round) moves on without
the code that ends it knowing who waits."""

from django.dispatch import Signal

# sent with job_id once a job's task is done with it (finished, failed, cancelled)
job_ended = Signal()
# sent with evaluation_id when an evaluation succeeds or fails
evaluation_ended = Signal()
