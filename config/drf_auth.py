"""The API's token authentication (settings REST_FRAMEWORK: first of the authentication classes). Its own module:
DRF imports the authentication classes while rest_framework.views loads, so this must not import that module."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed

from .rows import columns, fetch_one, instance


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token check (same header, same answers), with the token and its user read by one written-out SELECT
    (config.rows): it runs on every API request, and building the ORM query cost more CPU than running it."""

    def authenticate_credentials(self, key):
        from django.contrib.auth import get_user_model

        user_model, token_model = get_user_model(), self.get_model()
        row = fetch_one(
            f"SELECT {columns(user_model, 'u')} FROM {token_model._meta.db_table} t JOIN {user_model._meta.db_table} u "
            "ON u.id = t.user_id WHERE t.key = %s",
            [key],
        )  # fmt: skip
        if row is None:
            raise AuthenticationFailed(_("Invalid token."))
        user = instance(user_model, row)
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        token = token_model(key=key, user=user)
        token._state.adding = False
        return user, token
