from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation.errors import AssignmentAlreadyAnswered, AssignmentExpired
from annotation.models import Assignment, Label, Pair
from annotation.services.assignment import assignment_next
from annotation.services.labels import Submission, label_submit
from annotation.services.projects import guidelines_update, project_update
from tests.factories import make_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture
def assignment(project, annotator):
    make_pairs(project, 3)
    return assignment_next(project=project, annotator=annotator)


@pytest.mark.parametrize(("left_is_a", "screen", "stored"), [
    (True, "left", "A"), (True, "right", "B"), (False, "left", "B"), (False, "right", "A"),
    (False, "tie", "tie"), (True, "both_bad", "both_bad"),
])  # fmt: skip
def test_choice_is_stored_in_ab_terms_with_the_side(assignment, left_is_a, screen, stored):
    Assignment.objects.filter(pk=assignment.pk).update(left_is_a=left_is_a)
    assignment.refresh_from_db()
    label, created = label_submit(assignment=assignment, submission=Submission(choice=screen, time_on_item_ms=4200))
    assert created and label.choice == stored and label.left_is_a is left_is_a
    assert label.time_on_item_ms == 4200
    assert label.guideline_version.version == 1
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.DONE
    assert Pair.objects.get(pk=assignment.pair_id).label_count == 1


def test_double_submit_yields_one_label(assignment):
    first, created1 = label_submit(assignment=assignment, submission=Submission(choice="left"))
    again, created2 = label_submit(assignment=assignment, submission=Submission(choice="left"))
    assert (created1, created2) == (True, False) and first == again
    assert Label.objects.count() == 1
    assert Pair.objects.get(pk=assignment.pair_id).label_count == 1


def test_different_second_answer_is_refused(assignment):
    label_submit(assignment=assignment, submission=Submission(choice="left"))
    with pytest.raises(AssignmentAlreadyAnswered):
        label_submit(assignment=assignment, submission=Submission(choice="right"))
    assert Label.objects.get().choice in ("A", "B")
    assert Label.objects.count() == 1


def test_expired_assignment_changes_nothing(assignment):
    Assignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assignment.refresh_from_db()
    with pytest.raises(AssignmentExpired):
        label_submit(assignment=assignment, submission=Submission(choice="left"))
    assert not Label.objects.exists()
    assert Assignment.objects.get(pk=assignment.pk).state == Assignment.State.ACTIVE


def test_guideline_version_is_the_one_served(project, annotator):
    make_pairs(project, 2)
    a = assignment_next(project=project, annotator=annotator)
    guidelines_update(project=project, body="New rules", user=None)
    label, _ = label_submit(assignment=a, submission=Submission(choice="left"))
    assert label.guideline_version.version == 1
    b = assignment_next(project=project, annotator=annotator)
    label_b, _ = label_submit(assignment=b, submission=Submission(choice="left"))
    assert label_b.guideline_version.version == 2


def test_project_options_are_enforced(project, assignment):
    project_update(project=project, allow_tie=False, rationale_mode="required", criteria=["helpfulness"],
                   strength_scale=["slightly", "much"])  # fmt: skip
    assignment.refresh_from_db()
    assignment.project.refresh_from_db()
    cases = [
        (Submission(choice="tie", rationale="x", criteria={"helpfulness": "left"}), "choice"),
        (Submission(choice="left", criteria={"helpfulness": "left"}), "rationale"),
        (Submission(choice="left", rationale="x"), "criteria"),
        (Submission(choice="left", rationale="x", criteria={"helpfulness": "left", "other": "left"}), "criteria"),
        (Submission(choice="left", rationale="x", criteria={"helpfulness": "left"}, strength=3), "strength"),
        (Submission(choice="sideways", rationale="x", criteria={"helpfulness": "left"}), "choice"),
    ]
    for submission, field in cases:
        with pytest.raises(ValidationError) as exc:
            label_submit(assignment=assignment, submission=submission)
        assert field in exc.value.message_dict
    assert not Label.objects.exists()
    label, _ = label_submit(
        assignment=assignment,
        submission=Submission(choice="right", strength=2, rationale=" clear ", criteria={"helpfulness": "left"}),
    )
    a_left = assignment.left_is_a
    assert label.strength == 2 and label.rationale == "clear"
    assert label.criteria == {"helpfulness": "A" if a_left else "B"}


def test_time_on_item_is_capped_by_server_clock(assignment):
    label, _ = label_submit(assignment=assignment, submission=Submission(choice="left", time_on_item_ms=10**9))
    assert label.time_on_item_ms <= 61_000 + 1000


def test_submit_query_count_is_pinned(assignment, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        label_submit(assignment=assignment, submission=Submission(choice="left"))
