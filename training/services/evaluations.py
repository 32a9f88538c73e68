"""Evaluations, whichever door (job page, API, command) they come from: start one, resume, cancel, open its A/B
pairs to people, compute its report again. The steps themselves are training.evaluations.flow's, which the tasks
drive too."""

from ..evaluations.flow import (
    evaluation_cancel,
    evaluation_refresh,
    evaluation_resume,
    evaluation_send_to_people,
    evaluation_start,
)

__all__ = [
    "evaluation_cancel",
    "evaluation_refresh",
    "evaluation_resume",
    "evaluation_send_to_people",
    "evaluation_start",
]
