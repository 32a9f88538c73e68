"""Practice feedback: after an annotator answers a practice item, the expected answer (in the screen terms
they answered in) and the lead's explanation. Only practice items get feedback; calibration (gold) items never
reveal their answer."""

from __future__ import annotations

from .models import Assignment, Choice, Label
from .rendering import markdown_to_html

_SCREEN_TEXT = {"left": "The left response is better", "right": "The right response is better",
                "tie": "A tie", "both_bad": "Both are bad"}  # fmt: skip


def to_screen(choice: str, left_is_a: bool) -> str:
    """A stored A/B choice in the left/right terms of one assignment."""
    if choice == Choice.A:
        return "left" if left_is_a else "right"
    if choice == Choice.B:
        return "right" if left_is_a else "left"
    return choice


def practice_feedback(assignment: Assignment, label: Label) -> dict | None:
    """What the annotator learns after a practice item, or None for every other kind of item."""
    if assignment.kind != Assignment.Kind.PRACTICE:
        return None
    pair = assignment.pair
    expected = to_screen(pair.gold, assignment.left_is_a)
    answered = to_screen(label.choice, assignment.left_is_a)
    return {
        "correct": label.choice == pair.gold,
        "expected": expected,
        "expected_text": _SCREEN_TEXT[expected],
        "answered": answered,
        "answered_text": _SCREEN_TEXT[answered],
        "explanation_html": markdown_to_html(pair.gold_explanation) if pair.gold_explanation else "",
    }
