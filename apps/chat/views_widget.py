"""Widget pages: the routes (where the widget may be embedded; admins), the demo shop
(public: a plain product page that embeds the widget by its script tag) and the public page
of a published help article (where the widget's source links lead)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts.roles import Role, role_required
from apps.chat.forms_routes import WidgetRouteForm
from apps.chat.models import Article, WidgetRoute
from apps.chat.services.routes import DEMO_ROUTE_KEY, embed_snippet, route_create, route_update

admins = role_required(Role.ADMIN)


def _form_errors(form: WidgetRouteForm, exc: ValidationError) -> None:
    """Puts a service's ValidationError on the form, by field where it names one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _save(request: HttpRequest, route: WidgetRoute | None) -> tuple[WidgetRouteForm, WidgetRoute | None]:
    form = WidgetRouteForm(request.POST)
    if not form.is_valid():
        return form, None
    try:
        if route is None:
            return form, route_create(values=form.cleaned_data, user=request.user, request=request)
        return form, route_update(route, values=form.cleaned_data, user=request.user, request=request)
    except ValidationError as exc:
        _form_errors(form, exc)
        return form, None


@admins
def routes(request: HttpRequest) -> HttpResponse:
    form = WidgetRouteForm.blank()
    if request.method == "POST":
        form, saved = _save(request, None)
        if saved is not None:
            messages.success(request, f"Route {saved.key} created: paste its snippet into the site.")
            return redirect("chat:route", pk=saved.pk)
    base = request.build_absolute_uri("/")
    rows = [(route, embed_snippet(route, base_url=base)) for route in WidgetRoute.objects.all()]
    return render(request, "chat/routes.html", {"rows": rows, "form": form})


@admins
def route_edit(request: HttpRequest, pk: int) -> HttpResponse:
    route = WidgetRoute.objects.filter(pk=pk).first()
    if route is None:
        raise Http404("No such route.")
    form = WidgetRouteForm.for_route(route)
    if request.method == "POST":
        form, saved = _save(request, route)
        if saved is not None:
            messages.success(request, f"Route {saved.key} saved.")
            return redirect("chat:route", pk=saved.pk)
        route.refresh_from_db()  # the failed edit changed the instance, not the row
    snippet = embed_snippet(route, base_url=request.build_absolute_uri("/"))
    return render(request, "chat/route_edit.html", {"route": route, "form": form, "snippet": snippet})


def shop(request: HttpRequest) -> HttpResponse:
    """The demo shop: public, no login; the widget comes in through its script tag only."""
    route = WidgetRoute.objects.filter(key=DEMO_ROUTE_KEY).first()
    return render(request, "chat/shop.html", {"route_key": DEMO_ROUTE_KEY, "route": route})


def article_public(request: HttpRequest, pk: int) -> HttpResponse:
    """A published article, for customers following a cited source (drafts: 404)."""
    article = Article.objects.filter(pk=pk, published=True).first()
    if article is None:
        raise Http404("No such article.")
    return render(request, "chat/article_public.html", {"article": article})
