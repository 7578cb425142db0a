"""Knowledge-base dashboard for agents and admins, mounted at ``/kb/``.

Every page is behind ``role_required(agent)`` and calls the same services as the API.
Article bodies are shown through the ``kb_markdown`` filter only (markdown-it + nh3).
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
from apps.chat.forms import ArticleForm, KbImportForm
from apps.chat.models import Article, KbImport
from apps.chat.selectors import article_get, article_list, tag_list
from apps.chat.services.articles import article_create, article_delete, article_update
from apps.chat.services.background import enqueue
from apps.chat.services.imports import ImportRejected, kb_import_create
from apps.chat.services.index import kb_index_status, kb_search

agents = role_required(Role.AGENT)
PAGE_SIZE = 50
SEARCH_K = 10


def _article_or_404(pk: int) -> Article:
    article = article_get(pk)
    if article is None:
        raise Http404("No such article.")
    return article


@agents
def home(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:500]
    drafts = request.GET.get("drafts") == "on"
    tag = request.GET.get("tag", "").strip()[:50]
    state = {"published": True, "draft": False}.get(request.GET.get("state", ""))
    articles = article_list(tag=tag, published=state)
    page = Paginator(articles, PAGE_SIZE).get_page(request.GET.get("page"))
    others = request.GET.copy()
    others.pop("page", None)
    return render(
        request,
        "chat/kb_home.html",
        {
            "q": q,
            "drafts": drafts,
            "tag": tag,
            "state": request.GET.get("state", ""),
            "results": kb_search(q, SEARCH_K, published_only=not drafts) if q else None,
            "page_obj": page,
            "page_query": others.urlencode(),
            "tags": tag_list(),
            "status": kb_index_status(),
        },
    )


@agents
def article_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "chat/article_detail.html", {"article": _article_or_404(pk)})


def _edit(request: HttpRequest, article: Article | None) -> HttpResponse:
    initial: dict[str, Any] = {}
    if article is not None:
        initial = {
            "title": article.title,
            "body": article.body,
            "tags": ", ".join(article.tags),
            "published": article.published,
        }
    else:  # "Write an article" from the unanswered questions: /kb/articles/new/?title=...
        initial = {"title": request.GET.get("title", "")[:300]}
    form = ArticleForm(request.POST or None, initial=initial)
    preview = None
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            preview = form.cleaned_data["body"]
        else:
            try:
                if article is None:
                    article = article_create(values=form.values(), user=request.user, request=request)
                else:
                    article = article_update(article=article, values=form.values(), user=request.user, request=request)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "Saved. The search index follows in a few seconds.")
                return redirect("kb:article", pk=article.pk)
    return render(request, "chat/article_form.html", {"form": form, "article": article, "preview": preview})


@agents
def article_new(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@agents
def article_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _edit(request, _article_or_404(pk))


@agents
def article_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    article = _article_or_404(pk)
    if request.method == "POST":
        article_delete(article=article, user=request.user, request=request)
        messages.success(request, f"Deleted “{article.title}”.")
        return redirect("kb:home")
    return render(request, "chat/article_delete.html", {"article": article})


@agents
def import_page(request: HttpRequest) -> HttpResponse:
    form = KbImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = kb_import_create(
                files=[(f.name, f.read()) for f in form.cleaned_data["files"]],
                publish=form.cleaned_data["publish"],
                user=request.user,
                request=request,
            )
        except ImportRejected as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("kb:import", pk=run.pk)
    return render(request, "chat/import.html", {"form": form, "imports": KbImport.objects.all()[:10]})


@agents
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = KbImport.objects.filter(pk=pk).first()
    if run is None:
        raise Http404("No such import.")
    return render(request, "chat/import_detail.html", {"run": run})


@agents
@require_POST
def index_rebuild(request: HttpRequest) -> HttpResponse:
    enqueue("kb_index_build_task")
    messages.info(request, "The search index is being rebuilt by a worker.")
    return redirect("kb:home")
