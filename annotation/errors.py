"""Errors a user can cause and should be told about in plain words."""


class AnnotationError(Exception):
    """Base for refusals that change nothing. ``code`` is stable for API clients."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AssignmentExpired(AnnotationError):
    code = "expired"


class AssignmentAlreadyAnswered(AnnotationError):
    code = "already_answered"

    def __init__(self, message: str, state: str = ""):
        super().__init__(message)
        self.state = state


class AnnotatorPaused(AnnotationError):
    code = "paused"
