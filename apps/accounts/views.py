"""The login page, limited like the token API: per address, per username, and locked out
(django-axes) after repeated failures for one username from one address."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.services import lockout_remaining_s
from apps.accounts.throttling import client_ip, login_throttle_wait
from apps.core.errors import API_PREFIX, error_response


def _too_many(request: HttpRequest, *, code: str, message: str, wait_s: int) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        response = error_response(code, message, 429, {"retry_after_seconds": wait_s})
    else:
        minutes = max(1, math.ceil(wait_s / 60))
        response = render(request, "registration/locked_out.html",
                          {"message": message, "wait_s": wait_s, "wait_minutes": minutes}, status=429)
    response["Retry-After"] = str(wait_s)
    return response


def locked_out(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the answer to a login refused because the pair is locked out.

    (axes' async middleware passes the credentials second, so they are not relied on here.)
    """
    username = request.POST.get("username", "") if request.method == "POST" else ""
    wait_s = lockout_remaining_s(username=username, ip_address=client_ip(request))
    return _too_many(request, code="locked_out", wait_s=wait_s,
                     message="Too many failed logins for this username from this address; try again later.")


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = login_throttle_wait(request)
        if wait is not None:
            return _too_many(request, code="throttled", wait_s=max(1, math.ceil(wait)),
                             message="Too many login attempts; try again later.")
        return super().post(request, *args, **kwargs)
