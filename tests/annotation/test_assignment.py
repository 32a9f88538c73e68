from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Label, Pair
from annotation.services.assignment import annotator_offset, assignment_next, assignment_skip, leases_reclaim
from annotation.services.labels import Submission, label_submit
from tests.factories import ProjectFactory, UserFactory, make_pairs, member

pytestmark = pytest.mark.django_db


def annotate(project, user, choice="left"):
    a = assignment_next(project=project, annotator=user)
    if a is not None:
        label_submit(assignment=a, submission=Submission(choice=choice))
    return a


def test_next_claims_a_pair_and_reserves_a_slot(project, annotator):
    [pair] = make_pairs(project, 1)
    a = assignment_next(project=project, annotator=annotator)
    assert a.pair == pair and a.state == Assignment.State.ACTIVE
    assert a.expires_at - a.served_at == timedelta(seconds=project.lease_seconds)
    pair.refresh_from_db()
    assert pair.open_slots == project.overlap_k - 1


def test_held_assignment_is_served_again_instead_of_claiming_another(project, annotator):
    make_pairs(project, 3)
    first = assignment_next(project=project, annotator=annotator)
    assert assignment_next(project=project, annotator=annotator) == first
    prefetched = assignment_next(project=project, annotator=annotator, exclude=[first.public_id])
    assert prefetched != first
    assert Assignment.objects.filter(annotator=annotator).count() == 2


def test_each_pair_gets_exactly_k_distinct_annotators(db):
    project = ProjectFactory(overlap_k=2)
    users = [UserFactory() for _ in range(4)]
    for u in users:
        member(project, u)
    make_pairs(project, 3)
    for _ in range(5):  # more rounds than needed: everyone drains the pool
        for u in users:
            annotate(project, u)
    for pair in Pair.objects.filter(project=project):
        annotators = list(pair.labels.values_list("annotator_id", flat=True))
        assert len(annotators) == 2 and len(set(annotators)) == 2
        assert pair.label_count == 2 and pair.open_slots == 0
    assert all(assignment_next(project=project, annotator=u) is None for u in users)


def test_nobody_is_served_the_same_pair_twice(project, annotator):
    make_pairs(project, 2)
    seen = []
    while (a := annotate(project, annotator)) is not None:
        seen.append(a.pair_id)
    assert len(seen) == 2 and len(set(seen)) == 2


def test_closest_to_completion_first(project, annotator, lead):
    pairs = make_pairs(project, 20)
    first = annotate(project, lead)  # one pair now has one label
    assert assignment_next(project=project, annotator=annotator).pair_id == first.pair_id
    assert first.pair in pairs


def test_order_is_seeded_per_annotator(db):
    project = ProjectFactory(overlap_k=1)
    make_pairs(project, 50)
    u1, u2 = UserFactory(), UserFactory()
    assert annotator_offset(project.pk, u1.pk) == annotator_offset(project.pk, u1.pk)
    assert annotator_offset(project.pk, u1.pk) != annotator_offset(project.pk, u2.pk)
    a1 = assignment_next(project=project, annotator=u1)
    expected = (
        Pair.objects.filter(project=project, shuffle_key__gte=annotator_offset(project.pk, u1.pk))
        .order_by("shuffle_key")
        .first()
        or Pair.objects.filter(project=project).order_by("shuffle_key").first()
    )
    assert a1.pair_id == expected.pk


def test_expired_lease_returns_to_pool(db):
    project = ProjectFactory(overlap_k=1)
    make_pairs(project, 1)
    u1, u2 = UserFactory(), UserFactory()
    held = assignment_next(project=project, annotator=u1)
    assert assignment_next(project=project, annotator=u2) is None
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = assignment_next(project=project, annotator=u2)
    assert again is not None and again.pair_id == held.pair_id
    held.refresh_from_db()
    assert held.state == Assignment.State.EXPIRED
    # the first annotator does not get the pair back (served once), and cannot answer the expired lease
    assert assignment_next(project=project, annotator=u1) is None


def test_reclaim_is_idempotent(project, annotator):
    make_pairs(project, 2)
    a = assignment_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_reclaim(project=project) == 1
    assert leases_reclaim(project=project) == 0
    assert Pair.objects.get(pk=a.pair_id).open_slots == project.overlap_k


def test_skip_returns_slot_and_is_not_served_again(project, annotator, lead):
    [pair] = make_pairs(project, 1)
    a = assignment_next(project=project, annotator=annotator)
    assignment_skip(assignment=a)
    assignment_skip(assignment=a)  # a repeated skip is a no-op
    pair.refresh_from_db()
    assert pair.open_slots == project.overlap_k
    assert assignment_next(project=project, annotator=annotator) is None
    assert assignment_next(project=project, annotator=lead).pair_id == pair.pk
    assert not Label.objects.exists()


def test_both_sides_occur_for_response_a(db):
    project = ProjectFactory(overlap_k=1)
    make_pairs(project, 60)
    user = UserFactory()
    sides = set()
    for _ in range(60):
        a = annotate(project, user)
        sides.add(a.left_is_a)
    assert sides == {True, False}


def test_changing_k_reopens_slots(project, annotator):
    from annotation.services.projects import project_update

    [pair] = make_pairs(project, 1)
    annotate(project, annotator)
    project_update(project=project, overlap_k=5)
    pair.refresh_from_db()
    assert pair.open_slots == 4
    project_update(project=project, overlap_k=1)
    pair.refresh_from_db()
    assert pair.open_slots == 0


def test_next_query_count_is_pinned(project, annotator, django_assert_max_num_queries):
    make_pairs(project, 200)
    assignment_next(project=project, annotator=annotator)  # warm up
    with django_assert_max_num_queries(12):
        assignment_next(project=project, annotator=annotator, exclude=[])
