from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.roles import Role, role_required
from apps.mlops.selectors import role_overview


@role_required(*Role)
def models_overview(request: HttpRequest) -> HttpResponse:
    return render(request, "mlops/models.html", {"roles": role_overview(user=request.user)})
