"""Items mixed into an annotator's queue besides the K pool: practice, calibration (gold), mirrored repeats.
None of them takes one of a pair's K slots or counts toward K."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Label, Pair
from annotation.selectors import project_progress, project_quality, project_self_consistency
from annotation.services.assignment import assignment_next, assignment_skip, leases_reclaim
from annotation.services.calibration import pair_gold_set
from annotation.services.labels import Submission, label_submit
from annotation.services.mixed_in import REPEAT_GAP
from annotation.services.projects import project_update
from tests.factories import UserFactory, make_pairs, member

pytestmark = pytest.mark.django_db


def make_gold(project, n, answer="A", explanation=""):
    pairs = make_pairs(project, n)
    for p in pairs:
        pair_gold_set(pair=p, gold=answer, explanation=explanation)
    return pairs


def answer_all(project, annotator, choice="left", limit=500):
    served = []
    while (a := assignment_next(project=project, annotator=annotator)) is not None and len(served) < limit:
        served.append(a)
        label_submit(assignment=a, submission=Submission(choice=choice))
    return served


# --- calibration pairs stay out of the K pool, whatever happens to their assignments ---------------------------


def test_skipping_or_expiring_a_calibration_item_opens_no_slot(project, annotator):
    gold = make_gold(project, 2)
    make_pairs(project, 1)
    project.calibration_rate = 1.0
    first = assignment_next(project=project, annotator=annotator)
    assert first.kind == Assignment.Kind.GOLD
    assignment_skip(assignment=first)
    second = assignment_next(project=project, annotator=annotator)
    assert second.kind == Assignment.Kind.GOLD
    Assignment.objects.filter(pk=second.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_reclaim(project=project, wait=True) == 1
    assert set(Pair.objects.filter(pk__in=[p.pk for p in gold]).values_list("open_slots", flat=True)) == {0}
    assert assignment_next(project=project, annotator=annotator).kind == Assignment.Kind.REGULAR


def test_changing_k_leaves_calibration_pairs_out_of_the_pool(project):
    [gold] = make_gold(project, 1)
    [regular] = make_pairs(project, 1)
    project = project_update(project=project, overlap_k=5)
    gold.refresh_from_db()
    regular.refresh_from_db()
    assert (gold.open_slots, regular.open_slots) == (0, 5)


def test_calibration_answers_do_not_count_toward_k(project, annotator):
    [gold] = make_gold(project, 1)
    make_pairs(project, 1)
    project.calibration_rate = 1.0
    kinds = [a.kind for a in answer_all(project, annotator)]
    assert kinds == ["gold", "regular"]
    gold.refresh_from_db()
    assert (gold.label_count, gold.open_slots) == (0, 0)


def test_marking_and_unmarking_gold_moves_the_pair_out_of_and_back_into_the_pool(project, annotator):
    [pair] = make_pairs(project, 1)
    a = assignment_next(project=project, annotator=annotator)
    label_submit(assignment=a, submission=Submission(choice="left"))
    pair.refresh_from_db()
    assert (pair.label_count, pair.open_slots) == (1, 2)
    pair = pair_gold_set(pair=pair, gold="B", explanation="B follows the format rule.")
    assert (pair.gold, pair.open_slots) == ("B", 0)
    pair = pair_gold_set(pair=pair, gold="")
    assert (pair.gold, pair.gold_explanation, pair.open_slots) == ("", "", 2)


def test_gold_answer_must_be_a_choice_of_the_project(project):
    from django.core.exceptions import ValidationError

    project = project_update(project=project, allow_both_bad=False)
    [pair] = make_pairs(project, 1)
    with pytest.raises(ValidationError):
        pair_gold_set(pair=pair, gold="both_bad")
    with pytest.raises(ValidationError):
        pair_gold_set(pair=pair, gold="", explanation="an explanation without an answer")
    pair.refresh_from_db()
    assert pair.gold == "" and pair.open_slots == project.overlap_k


# --- practice ---------------------------------------------------------------------------------------------------


def test_practice_serves_the_first_n_items_as_practice_then_regular(project, annotator):
    make_gold(project, 4)
    make_pairs(project, 3)
    project = project_update(project=project, practice_items=2, calibration_rate=0.0)
    served = answer_all(project, annotator)
    assert [a.kind for a in served] == ["practice", "practice", "regular", "regular", "regular"]
    # practice answers: no K, no calibration score, no pause
    assert not Label.objects.filter(assignment__kind="gold").exists()
    assert project_progress(project).labels == 3


def test_practice_pairs_are_never_served_again_as_unannounced_calibration(project, annotator):
    make_gold(project, 2)
    make_pairs(project, 2)
    project = project_update(project=project, practice_items=2)
    project.calibration_rate = 1.0
    kinds = [a.kind for a in answer_all(project, annotator)]
    assert kinds.count("practice") == 2 and "gold" not in kinds


def test_practice_with_too_few_calibration_pairs_moves_on(project, annotator):
    make_gold(project, 1)
    make_pairs(project, 2)
    project = project_update(project=project, practice_items=5, calibration_rate=0.0)
    assert [a.kind for a in answer_all(project, annotator)] == ["practice", "regular", "regular"]


# --- mirrored repeats -------------------------------------------------------------------------------------------


def test_repeats_come_back_later_with_sides_swapped_and_do_not_change_k(project, annotator):
    project = project_update(project=project, overlap_k=1)
    make_pairs(project, REPEAT_GAP + 6)
    project.repeat_rate = 1.0  # every claim tries a repeat first
    served = answer_all(project, annotator)
    regular = [a for a in served if a.kind == Assignment.Kind.REGULAR]
    repeats = [a for a in served if a.kind == Assignment.Kind.REPEAT]
    assert len(regular) == REPEAT_GAP + 6 and repeats
    originals = {a.pair_id: a for a in regular}
    for r in repeats:
        original = originals[r.pair_id]
        assert r.left_is_a is not original.left_is_a  # sides swapped
        assert served.index(r) - served.index(original) > REPEAT_GAP  # served later
    assert len({r.pair_id for r in repeats}) == len(repeats)  # at most once per pair
    # K completion is unchanged: every pair has exactly K=1 counted label and no open slot
    assert set(Pair.objects.filter(project=project).values_list("label_count", "open_slots")) == {(1, 0)}
    assert project_progress(project).pairs_complete == REPEAT_GAP + 6


def test_self_consistency_compares_repeat_with_original_in_a_b_terms(project, annotator):
    project = project_update(project=project, overlap_k=1)
    make_pairs(project, REPEAT_GAP + 4)
    project.repeat_rate = 1.0
    # the annotator always clicks "left": with sides swapped on the repeat that is the other response every time
    answer_all(project, annotator, choice="left")
    report = project_self_consistency(project)[annotator.username]
    assert report["repeats"] >= 1 and report["consistent"] == 0 and report["self_consistency"] == 0.0
    steady = UserFactory(username="steady")
    member(project, steady)
    project = project_update(project=project, overlap_k=2)
    project.repeat_rate = 1.0
    answer_all(project, steady, choice="tie")
    assert project_self_consistency(project)["steady"]["self_consistency"] == 1.0
    per_annotator = project_quality(project, n_boot=10)["per_annotator"]
    assert per_annotator["steady"]["self_consistency"] == 1.0 and per_annotator["annotator"]["same_side"] >= 1


def test_a_repeat_is_not_served_before_the_annotator_has_done_enough_other_items(project, annotator):
    make_pairs(project, REPEAT_GAP)
    project.repeat_rate = 1.0
    kinds = [a.kind for a in answer_all(project, annotator)]
    assert kinds == ["regular"] * REPEAT_GAP
