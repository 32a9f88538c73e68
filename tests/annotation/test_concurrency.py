"""Concurrency on real PostgreSQL: many annotators (threads with their own connections) at once."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotation.errors import AnnotationError
from annotation.models import Assignment, Label, Pair, Project
from annotation.services.assignment import assignment_next
from annotation.services.labels import Submission, label_submit
from tests.factories import ProjectFactory, UserFactory, make_pairs, member

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 32


def _annotator_loop(project_id, user_id, abandon_every, stats):
    """Label until nothing is left; every `abandon_every`-th claim is walked away from (its lease must expire)."""
    from django.contrib.auth import get_user_model

    try:
        project = Project.objects.get(pk=project_id)
        user = get_user_model().objects.get(pk=user_id)
        n = 0
        while True:
            a = assignment_next(project=project, annotator=user, exclude=stats["abandoned"].get(user_id, []))
            if a is None:
                return
            n += 1
            if abandon_every and n % abandon_every == 0:
                stats["abandoned"].setdefault(user_id, []).append(a.public_id)
                continue
            try:
                _, created = label_submit(assignment=a, submission=Submission(choice="left"))
            except AnnotationError:
                stats["refused"] += 1  # its lease ran out while we held it: fine, nothing stored
                continue
            with stats["lock"]:
                stats["submitted"] += created
    finally:
        connections.close_all()


def test_32_concurrent_annotators_give_every_pair_exactly_k_labels():
    assert connection.vendor == "postgresql"
    project = ProjectFactory(overlap_k=3)
    users = [UserFactory() for _ in range(WORKERS)]
    for u in users:
        member(project, u)
    make_pairs(project, 300)
    stats = {"submitted": 0, "refused": 0, "abandoned": {}, "lock": threading.Lock()}
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda u: _annotator_loop(project.pk, u.pk, 0, stats), users))

    labels = Label.objects.filter(project=project)
    assert labels.count() == stats["submitted"] == 300 * 3  # nothing lost, nothing duplicated
    per_pair = Counter(labels.values_list("pair_id", flat=True))
    assert set(per_pair.values()) == {3}
    distinct = Counter(labels.values_list("pair_id", "annotator_id"))
    assert max(distinct.values()) == 1  # 3 distinct annotators per pair
    assert not Pair.objects.filter(project=project).exclude(label_count=3).exists()
    assert not Pair.objects.filter(project=project).exclude(open_slots=0).exists()


def test_abandoned_leases_are_reclaimed_under_concurrency():
    project = ProjectFactory(overlap_k=3)
    Project.objects.filter(pk=project.pk).update(lease_seconds=1)
    users = [UserFactory() for _ in range(WORKERS)]
    for u in users:
        member(project, u)
    make_pairs(project, 120)
    stats = {"submitted": 0, "refused": 0, "abandoned": {}, "lock": threading.Lock()}
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda u: _annotator_loop(project.pk, u.pk, 7, stats), users))
    abandoned = sum(len(v) for v in stats["abandoned"].values())
    assert abandoned > 0
    # Let the abandoned leases run out; a fresh round must pick those slots up.
    Assignment.objects.filter(project=project, state=Assignment.State.ACTIVE).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    stats["abandoned"].clear()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda u: _annotator_loop(project.pk, u.pk, 0, stats), users))
    labels = Label.objects.filter(project=project)
    per_pair = Counter(labels.values_list("pair_id", flat=True))
    assert len(per_pair) == 120 and set(per_pair.values()) == {3}
    assert max(Counter(labels.values_list("pair_id", "annotator_id")).values()) == 1
    assert labels.count() == stats["submitted"]
    assert (
        Assignment.objects.filter(project=project, state=Assignment.State.EXPIRED).count()
        >= abandoned - stats["refused"]
    )


def test_double_click_from_two_connections_yields_one_label():
    project = ProjectFactory(overlap_k=1)
    user = UserFactory()
    member(project, user)
    make_pairs(project, 1)
    a = assignment_next(project=project, annotator=user)
    barrier = threading.Barrier(8)

    def click(_):
        try:
            barrier.wait()
            return label_submit(assignment=Assignment.objects.get(pk=a.pk), submission=Submission(choice="right"))[1]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(click, range(8)))
    assert created.count(True) == 1 and created.count(False) == 7
    assert Label.objects.filter(assignment=a).count() == 1
    assert Pair.objects.get(pk=a.pair_id).label_count == 1
