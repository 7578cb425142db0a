"""Merchandiser dashboard: catalogue, item explorer, customers, A/B tests, evaluations, widget.

Every page is for merchandisers and admins (``role_required``); the pages call the same
services as the API.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.roles import Role, role_required
from apps.recommend.forms import ABTestForm, ABTestStopForm, CatalogueImportForm, EvaluationForm, WidgetKeyForm
from apps.recommend.models import ABTest, CatalogueImport, EvaluationRun, Item, WidgetKey
from apps.recommend.selectors import category_list, customer_history, item_list, models_status
from apps.recommend.services.abtests import abtest_create, abtest_results, abtest_stop
from apps.recommend.services.background import enqueue
from apps.recommend.services.catalogue import ImportRejected, catalogue_import_create
from apps.recommend.services.evaluation import evaluation_chart, evaluation_create
from apps.recommend.services.recommendations import NotReady, recommendation_list, similar_list
from apps.recommend.services.widget import widget_key_create, widget_key_deactivate, widget_key_rotate

merchandisers = role_required(Role.MERCHANDISER)
PAGE_SIZE = 50
EXPLORER_K = 12


def _object_or_404(model: Any, **lookup: Any) -> Any:
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        raise Http404("No such object.")
    return obj


@merchandisers
def catalogue(request: HttpRequest) -> HttpResponse:
    q, category = request.GET.get("q", "").strip()[:100], request.GET.get("category", "").strip()[:100]
    page = Paginator(item_list(q=q, category=category), PAGE_SIZE).get_page(request.GET.get("page"))
    others = request.GET.copy()
    others.pop("page", None)
    return render(request, "recommend/catalogue.html", {
        "page_obj": page, "page_query": others.urlencode(), "q": q, "category": category,
        "categories": category_list(), "status": models_status(), "import_form": CatalogueImportForm(),
        "imports": CatalogueImport.objects.all()[:5],
    })


@merchandisers
@require_POST
def import_create(request: HttpRequest) -> HttpResponse:
    form = CatalogueImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a file to import.")
        return redirect("recommend:home")
    try:
        run = catalogue_import_create(uploaded_file=form.cleaned_data["file"],
                                      file_format=form.cleaned_data["format"] or None, user=request.user)
    except ImportRejected as exc:
        messages.error(request, str(exc))
        return redirect("recommend:home")
    return redirect("recommend:import", pk=run.pk)


@merchandisers
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "recommend/import_detail.html", {"run": _object_or_404(CatalogueImport, pk=pk)})


@merchandisers
@require_POST
def index_rebuild(request: HttpRequest) -> HttpResponse:
    enqueue("item_index_build_task")
    messages.info(request, "The index is being rebuilt by a worker; this page shows it when it is done.")
    return redirect("recommend:home")


@merchandisers
@require_POST
def fit(request: HttpRequest) -> HttpResponse:
    enqueue("recommenders_fit_task")
    messages.info(request, "The recommenders are being fitted by a worker.")
    return redirect("recommend:home")


@merchandisers
def item_explorer(request: HttpRequest, external_id: str) -> HttpResponse:
    item = _object_or_404(Item, external_id=external_id)
    similar = similar_list(item=item, k=EXPLORER_K, log=False)
    return render(request, "recommend/item.html", {"item": item, "similar": similar})


@merchandisers
def customer(request: HttpRequest) -> HttpResponse:
    user_key = request.GET.get("user", "").strip()[:100]
    context: dict[str, Any] = {"user_key": user_key}
    if user_key:
        context["history"] = customer_history(user_key)
        try:
            context["recommendations"] = recommendation_list(user_key=user_key, k=EXPLORER_K, log=False)
        except NotReady as exc:
            context["not_ready"] = str(exc)
    return render(request, "recommend/customer.html", context)


@merchandisers
def abtest_index(request: HttpRequest) -> HttpResponse:
    form = ABTestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            test = abtest_create(name=form.cleaned_data["name"], variants=form.variants(), user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("recommend:abtest", pk=test.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "recommend/abtests.html", {"tests": ABTest.objects.all()[:50], "form": form},
                  status=status)


@merchandisers
def abtest_detail(request: HttpRequest, pk: int) -> HttpResponse:
    test = _object_or_404(ABTest, pk=pk)
    return render(request, "recommend/abtest_detail.html",
                  {"test": test, "results": abtest_results(test), "stop_form": ABTestStopForm()})


@merchandisers
@require_POST
def abtest_stop_view(request: HttpRequest, pk: int) -> HttpResponse:
    test = _object_or_404(ABTest, pk=pk)
    form = ABTestStopForm(request.POST)
    if form.is_valid():
        try:
            abtest_stop(test=test, winner=form.cleaned_data["winner"], make_default=form.cleaned_data["make_default"])
            messages.success(request, "The test is stopped.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("recommend:abtest", pk=test.pk)


@merchandisers
def evaluation_index(request: HttpRequest) -> HttpResponse:
    form = EvaluationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = evaluation_create(cutoff=form.cleaned_data["cutoff"], k=form.cleaned_data["k"],
                                kinds=form.cleaned_data["kinds"], user=request.user)
        return redirect("recommend:evaluation", pk=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "recommend/evaluations.html", {"runs": EvaluationRun.objects.all()[:50], "form": form},
                  status=status)


@merchandisers
def evaluation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _object_or_404(EvaluationRun, pk=pk)
    return render(request, "recommend/evaluation_detail.html", {"run": run, "chart": evaluation_chart(run)})


def _widget_page(request: HttpRequest, form: WidgetKeyForm, *, shown: WidgetKey | None = None,
                 status: int = 200) -> HttpResponse:
    """The keys (never their secrets) and, right after creating or rotating one, that key's secret."""
    keys = WidgetKey.objects.all()[:50]
    return render(request, "recommend/widget.html",
                  {"form": form, "keys": keys, "shown": shown,
                   "origin": request.build_absolute_uri("/").rstrip("/")}, status=status)


@merchandisers
def widget_keys(request: HttpRequest) -> HttpResponse:
    form = WidgetKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key = widget_key_create(name=form.cleaned_data["name"], allowed_origins=form.origins(),
                                    user=request.user, request=request)
        except ValidationError as exc:
            form.add_error("allowed_origins", exc)
        else:
            return _widget_page(request, WidgetKeyForm(), shown=key, status=201)
    return _widget_page(request, form, status=400 if request.method == "POST" else 200)


@merchandisers
@require_POST
def widget_key_rotate_page(request: HttpRequest, pk: int) -> HttpResponse:
    key = widget_key_rotate(key=_object_or_404(WidgetKey, pk=pk), user=request.user, request=request)
    return _widget_page(request, WidgetKeyForm(), shown=key)


@merchandisers
@require_POST
def widget_key_revoke_page(request: HttpRequest, pk: int) -> HttpResponse:
    key = _object_or_404(WidgetKey, pk=pk)
    if key.active:
        widget_key_deactivate(key=key, user=request.user, request=request)
    messages.success(request, f"Widget key {key.name!r} revoked.")
    return redirect("recommend:widget")
