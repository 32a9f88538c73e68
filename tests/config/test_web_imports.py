"""The web process never imports torch (nor transformers, TRL or PEFT): every URL module, view, API view and
service loaded as the web server loads them, in a fresh interpreter. Reward models, local generation and training
import them on gpu-queue workers only, inside the task."""

import subprocess
import sys

from django.conf import settings

SCRIPT = """
import sys, django
django.setup()
from django.urls import get_resolver
import config.wsgi  # noqa: F401
get_resolver().url_patterns  # imports every urls module and the views they name
heavy = sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_the_web_process_never_imports_torch():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, capture_output=True, text=True,
                         timeout=120, env={"DJANGO_SETTINGS_MODULE": "config.settings", "PATH": "/usr/bin:/bin",
                                           "HOME": str(settings.BASE_DIR)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none", out.stdout
