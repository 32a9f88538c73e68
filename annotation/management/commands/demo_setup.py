"""Create (or refresh) the demo project with demo users. Safe to run repeatedly; refuses in production."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError

from annotation.demo import DEMO_GUIDELINES, demo_pairs
from annotation.imports.importer import pairs_import
from annotation.models import Membership, Project
from annotation.services.projects import membership_set, project_create

DEMO_PASSWORD = "arbiter-demo"
USERS = [("demo-lead", Membership.Role.LEAD), ("demo-annotator-1", Membership.Role.ANNOTATOR),
         ("demo-annotator-2", Membership.Role.ANNOTATOR)]  # fmt: skip


class Command(BaseCommand):
    help = "Create the demo project, its pairs and three demo users (lead + two annotators)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("demo_setup creates users with a known password; it is disabled in production.")
        user_model = get_user_model()
        users = {}
        for username, _role in USERS:
            user, created = user_model.objects.get_or_create(username=username)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            users[username] = user
        users["demo-lead"].user_permissions.add(Permission.objects.get(codename="add_project"))

        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = project_create(
                name="Demo: helpful answers",
                slug="demo",
                created_by=users["demo-lead"],
                guidelines=DEMO_GUIDELINES,
                overlap_k=2,
                strength_scale=["slightly", "clearly", "much"],
                practice_items=2,
                description="A small project written by Arbiter's demo script. Label a few pairs from the keyboard.",
            )
        for username, role in USERS:
            membership_set(project=project, user=users[username], role=role)

        path = settings.VAR_DIR / "demo_pairs.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo_pairs()), encoding="utf-8")
        batch = pairs_import(project=project, path=path, filename="demo_pairs.jsonl", fmt="pairs")
        self.stdout.write(
            f"Demo project 'demo': {batch.pairs_created} new pairs ({batch.duplicates_skipped} already there).\n"
            "Log in at http://127.0.0.1:8000/ with any of:\n"
            + "".join(f"  {u:<18} password: {DEMO_PASSWORD}   ({r})\n" for u, r in USERS)
        )
