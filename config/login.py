"""Login with throttling: after LOGIN_FAILURE_LIMIT failed attempts for one username from one address within
LOGIN_FAILURE_WINDOW seconds, further attempts are refused (even with the right password) until the window passes.
Counters live in the shared cache, so every web process sees them; with the cache down, logins work unthrottled
(and the failure is logged) rather than not at all."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError

from .shared_cache import cache_count, cache_delete, cache_get


def _key(request, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    digest = hashlib.sha256(f"{username.strip().lower()}|{address}".encode()).hexdigest()[:32]
    return f"login-failures:{digest}"


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self):
        key = _key(self.request, self.data.get("username", ""))
        if cache_get(key, 0) >= settings.LOGIN_FAILURE_LIMIT:
            minutes = max(1, settings.LOGIN_FAILURE_WINDOW // 60)
            raise ValidationError(
                f"Too many failed logins for this account from your address. Try again in {minutes} minutes.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            cache_count(key, settings.LOGIN_FAILURE_WINDOW)
            raise
        cache_delete(key)
        return cleaned


class ThrottledLoginView(LoginView):
    form_class = ThrottledAuthenticationForm
