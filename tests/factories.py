from __future__ import annotations

import hashlib
import itertools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from annotation.models import GuidelineVersion, Membership, Pair, Project

PASSWORD = "arbiter-test-pw"
# Hashed once (PBKDF2 takes ~0.5 s a time): every test user gets this real hash, so password logins still work,
# in this process and in the web and worker processes the tests start.
_PASSWORD_HASH = make_password(PASSWORD)
_counter = itertools.count()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = _PASSWORD_HASH

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    overlap_k = 3
    # Off unless a test is about them: random repeats would make every count-based test flaky.
    repeat_rate = 0.0

    @factory.post_generation
    def guidelines(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            GuidelineVersion.objects.create(project=obj, version=1, body=extracted or "Pick the more helpful answer.")


def member(project: Project, user, role: str = Membership.Role.ANNOTATOR) -> Membership:
    return Membership.objects.create(project=project, user=user, role=role)


def make_pairs(project: Project, n: int, *, model_a: str = "model-alpha", model_b: str = "model-beta") -> list[Pair]:
    """n distinct pairs written straight to the table (the import service has its own tests)."""
    pairs = []
    for _ in range(n):
        i = next(_counter)
        digest = hashlib.sha256(f"pair-{i}".encode()).hexdigest()
        pairs.append(
            Pair(
                project=project,
                external_id=f"ext-{i}",
                prompt=[{"role": "user", "content": f"Question {i}?"}],
                response_a=f"Answer A to question {i}.",
                response_b=f"Answer B to question {i}, which is longer.",
                model_a=model_a,
                model_b=model_b,
                content_hash=digest,
                shuffle_key=int(digest[:8], 16) & 0x7FFFFFFF,
                open_slots=project.overlap_k,
            )
        )
    return Pair.objects.bulk_create(pairs)
