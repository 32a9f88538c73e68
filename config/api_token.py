"""Your API token, for scripts and the Python client (client/): shown to its owner only, made on request, and
replaced (the old key stops working at once) when it may have leaked."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request):
    if request.method == "POST":
        with transaction.atomic():
            replaced = Token.objects.filter(user=request.user).delete()[0] > 0
            Token.objects.create(user=request.user)
        messages.success(request, "New token made; the old one no longer works." if replaced else "Token made.")
        return redirect("api_token")
    token = Token.objects.filter(user=request.user).first()
    base = request.build_absolute_uri("/").rstrip("/")
    return render(request, "registration/api_token.html", {"token": token, "base": base})
