"""`python manage.py export_dataset <slug> --recipe <name> --format dpo|kto [--out PATH] [--config JSON] ...`"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from training.models import CurationRecipe
from training.services.exports import export_create
from training.services.recipes import recipe_save
from training.storage import export_folder


class Command(BaseCommand):
    help = "Curate a project's pairs with a saved recipe and write a versioned, TRL-ready export."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--recipe", required=True, help="recipe name (its latest version is used)")
        parser.add_argument("--config", help="JSON recipe settings: saved first as the recipe's next version")
        parser.add_argument("--format", choices=["dpo", "kto"], default="dpo")
        parser.add_argument("--conversational", action="store_true", help="message lists instead of strings")
        parser.add_argument("--test-fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", type=Path, help="also copy the export's files into this folder")

    def handle(self, *args, slug, recipe, config, format, conversational, test_fraction, seed, out, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project with slug {slug!r}.")
        try:
            if config is not None:
                saved = recipe_save(project=project, name=recipe, config=json.loads(config), user=None)
            else:
                saved = CurationRecipe.objects.filter(project=project, name=recipe).order_by("-version").first()
                if saved is None:
                    raise CommandError(f"No recipe named {recipe!r} in {slug}; give --config to create it.")
            export = export_create(project=project, recipe=saved, fmt=format, user=None,
                                   conversational=conversational, test_fraction=test_fraction, seed=seed,
                                   run_now=True)  # fmt: skip
        except json.JSONDecodeError as exc:
            raise CommandError(f"--config is not valid JSON: {exc}") from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        folder = export_folder(export)
        self.stdout.write(
            f"Export {export.public_id}: recipe {saved.name} v{saved.version}, {export.rows_train} train / "
            f"{export.rows_test} test rows, sha256 {export.content_hash}\n  {folder}"
        )
        if out is not None:
            shutil.copytree(folder, out, dirs_exist_ok=True)
            self.stdout.write(f"  copied to {out}")
