"""/healthz: the database and the broker, for load balancers and container health checks. No login, no details
beyond ok/error per component; 200 when both answer, 503 otherwise."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means "not healthy"; the reason goes to the log, not the response
        return "error"
    return "ok"


def _broker() -> str:
    from kombu import Connection

    try:
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        with Connection(settings.CELERY_BROKER_URL, transport_options=options,
                        connect_timeout=2) as conn:  # fmt: skip
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        return "error"
    return "ok"


@never_cache
@require_GET
def healthz(request):
    state = {"database": _database(), "broker": _broker()}
    healthy = all(v == "ok" for v in state.values())
    return JsonResponse({"status": "ok" if healthy else "error", **state}, status=200 if healthy else 503)
