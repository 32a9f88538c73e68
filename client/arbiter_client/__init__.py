"""Arbiter's Python client: ``Arbiter(url, token)`` → projects, imports, members, judges, recipes, exports (as
``datasets.DatasetDict``), Hub pushes and training jobs. See client/README.md."""

from .client import Arbiter, Export, Job, Project
from .errors import ArbiterError, TimedOut

__all__ = ["Arbiter", "ArbiterError", "Export", "Job", "Project", "TimedOut"]
