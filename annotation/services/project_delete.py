"""Deleting a project and everything in it, set-based, whatever its size.

Django's cascade collector loads the primary keys of every row it deletes and sends them back as IN lists; on
PostgreSQL a project of more than ~65,535 pairs then cannot be deleted at all (the bound-parameter limit). Here
each table that hangs off the project (found from the models' relations, so apps added later are covered) gets
one ``DELETE ... WHERE <path to the project> = id``, children first, in one transaction. Apps that keep files for
a project (exports, training artifacts) listen to ``project_deleting`` and remove them after the commit.
"""

from __future__ import annotations

from collections import deque

from django.db import models, router, transaction
from django.dispatch import Signal

from ..models import Project

# Sent inside the deleting transaction, before any row is gone: receivers read what they need (file paths) and
# schedule their clean-up with transaction.on_commit. Arguments: project.
project_deleting = Signal()


def _tables_under(root) -> list[tuple[type[models.Model], str]]:
    """(model, lookup from that model to the root's pk) for every model reachable from ``root`` through foreign keys
    that point at it, nearest first."""
    found: dict[type[models.Model], str] = {}
    queue = deque([(root, "pk")])
    while queue:
        model, path = queue.popleft()
        for rel in model._meta.related_objects:
            if rel.many_to_many:
                raise NotImplementedError(f"{rel} is many-to-many: project_delete does not handle it yet")
            child = rel.related_model
            if child in found or child is root or rel.on_delete is not models.CASCADE:
                continue
            found[child] = f"{rel.field.name}__{path}" if path != "pk" else rel.field.name
            queue.append((child, found[child]))
    return list(found.items())


def _children_first(tables: list[tuple[type[models.Model], str]]) -> list[tuple[type[models.Model], str]]:
    """Order the tables so that every table comes before those its foreign keys point at."""
    models_in = {m for m, _ in tables}
    points_at = {m: {f.related_model for f in m._meta.concrete_fields if f.is_relation and f.related_model in models_in
                     and f.related_model is not m} for m in models_in}  # fmt: skip
    ordered, done = [], set()

    def visit(model, seen=()):
        if model in done:
            return
        for other, targets in points_at.items():  # everything that points at this model goes first
            if model in targets and other not in seen:
                visit(other, (*seen, model))
        done.add(model)
        ordered.append(model)

    for model, _ in tables:
        visit(model)
    paths = dict(tables)
    return [(m, paths[m]) for m in ordered]


def project_delete(*, project: Project) -> dict[str, int]:
    """Delete the project and all of its rows; returns the number of rows deleted per model label."""
    using = router.db_for_write(Project)
    counts: dict[str, int] = {}
    with transaction.atomic(using=using):
        Project.objects.select_for_update().filter(pk=project.pk).get()
        project_deleting.send(sender=Project, project=project)
        for model, path in _children_first(_tables_under(Project)):
            counts[model._meta.label] = model._base_manager.using(using).filter(**{path: project.pk})._raw_delete(using)
        counts[Project._meta.label] = Project.objects.filter(pk=project.pk)._raw_delete(using)
    return counts
