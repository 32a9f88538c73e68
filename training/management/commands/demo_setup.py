"""`python manage.py demo_setup`: the demo `make run` shows (refused in production).

Users for every role, a project of a few hundred pairs written by the project (annotation/demo.py) with labels from
four simulated annotators of distinct habits, a judge and a generator on the local model server with a prompt set
(generation/demo.py), saved recipes (one for iterative DPO campaigns) and an export. Running it again changes
nothing, and it never touches anything but the demo project and the demo users. The judge's and the generator's
first small runs start when the local model is ready (`make run` calls demo_local_runs then)."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError

from annotation.demo import DEMO_GUIDELINES, SIMULATED, demo_pairs, simulated_labels
from annotation.imports.importer import pairs_import
from annotation.models import Label, Membership, Project
from annotation.services.projects import membership_set, project_create
from generation.demo import demo_generation
from judging.demo import demo_composite, demo_judge, demo_rater, demo_reward_model
from training.models import DatasetExport
from training.services.exports import export_create
from training.services.recipes import recipe_save

DEMO_SLUG = "demo"
DEMO_PASSWORD = "arbiter-demo"
DEMO_RECIPE = {"source": "human_else_judge", "min_human_agreement": 0.5}
# an iterative DPO campaign's recipe: best-vs-worst pairs labelled by the judge's scores of their candidates (RLHFlow)
CAMPAIGN_RECIPE_NAME, CAMPAIGN_RECIPE = "campaign: by scores", {"source": "scores"}
PEOPLE = [("demo-admin", "admin"), ("demo-lead", Membership.Role.LEAD), ("demo-annotator-1", Membership.Role.ANNOTATOR),
          ("demo-annotator-2", Membership.Role.ANNOTATOR)]  # fmt: skip


class Command(BaseCommand):
    help = ("Create (or leave as it is) the demo: users, a labelled project, a local judge and generator, a recipe "
            "and an export.")  # fmt: skip

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("demo_setup creates users with a known password; it is disabled in production.")
        users = {name: self._user(name, admin=role == "admin") for name, role in PEOPLE}
        users["demo-lead"].user_permissions.add(Permission.objects.get(codename="add_project"))
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is not None and project.created_by_id != users["demo-lead"].pk:
            raise CommandError(f"A project with the slug {DEMO_SLUG!r} exists and is not the demo: demo_setup leaves "
                               "it alone. Rename it (or use another database) to get the demo.")  # fmt: skip
        if project is None:
            project = project_create(
                name="Demo: helpful answers", slug=DEMO_SLUG, created_by=users["demo-lead"], guidelines=DEMO_GUIDELINES,
                overlap_k=2, strength_scale=["slightly", "clearly", "much"], practice_items=2,
                description="Written by Arbiter's demo: careful and careless answers to a few hundred questions, half "
                "labelled by four simulated annotators. Label some from the keyboard, then follow the pipeline.",
            )  # fmt: skip
        for name, role in PEOPLE:
            if role != "admin":
                membership_set(project=project, user=users[name], role=role)

        path = settings.VAR_DIR / "demo_pairs.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo_pairs()), encoding="utf-8")
        batch = pairs_import(project=project, path=path, filename="demo_pairs.jsonl", fmt="pairs")
        self.stdout.write(f"Demo project '{DEMO_SLUG}': {batch.pairs_created} new pairs "
                          f"({batch.duplicates_skipped} already there).")  # fmt: skip

        for who in SIMULATED:  # each simulated annotator labels once, ever
            user = self._user(who.username)
            membership_set(project=project, user=user, role=Membership.Role.ANNOTATOR)
            if not Label.objects.filter(project=project, annotator=user).exists():
                given = simulated_labels(project, user, who)
                self.stdout.write(f"  {who.username}: {given} labels")

        demo_judge(project, users["demo-lead"])
        demo_rater(project, users["demo-lead"])
        demo_reward_model(project, users["demo-lead"])
        demo_composite(project, users["demo-lead"])
        demo_generation(project, users["demo-lead"])
        recipe_save(project=project, name=CAMPAIGN_RECIPE_NAME, config=CAMPAIGN_RECIPE, user=users["demo-lead"])
        recipe = recipe_save(project=project, name="demo", config=DEMO_RECIPE, user=users["demo-lead"])
        if not DatasetExport.objects.filter(recipe=recipe, state=DatasetExport.State.SUCCEEDED).exists():
            export = export_create(project=project, recipe=recipe, fmt="dpo", user=users["demo-lead"], run_now=True)
            self.stdout.write(f"  export of recipe demo v{recipe.version}: {export.rows_train} train / "
                              f"{export.rows_test} test rows")  # fmt: skip
        self.stdout.write(
            "Log in at http://127.0.0.1:8000/ with any of (password "
            + DEMO_PASSWORD
            + "):\n"
            + "".join(f"  {name:<18} {role}\n" for name, role in PEOPLE)
        )

    def _user(self, username: str, *, admin: bool = False):
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = admin
            user.save()
        return user
