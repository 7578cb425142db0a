"""Dashboard pages: merchandisers and admins only; the explorer, customers, evaluation pages."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.recommend.models import EvaluationRun
from apps.recommend.services.blends import MEMBERS
from apps.recommend.services.evaluation import evaluation_create
from tests.recommend.factories import START, fitted_shop

pytestmark = pytest.mark.django_db

PAGES = ["/recommend/", "/recommend/customers/?user=c0", "/recommend/abtests/", "/recommend/evaluations/",
         "/recommend/widget/", "/recommend/items/k0/"]


@pytest.fixture
def shop_items():
    return fitted_shop()


@pytest.mark.parametrize("role", ["analyst", "agent", None])
def test_other_roles_are_refused_every_page(make_user, shop_items, role):
    client = Client()
    client.force_login(make_user(*([role] if role else [])))

    assert {client.get(path).status_code for path in PAGES} == {403}


def test_anonymous_visitors_go_to_the_login_page(shop_items):
    response = Client().get("/recommend/items/k0/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ["merchandiser", "admin"])
def test_merchandisers_and_admins_see_every_page_with_nothing_inline(make_user, shop_items, role):
    from apps.recommend.services.evaluation import evaluation_create
    from apps.recommend.services.widget import widget_key_create
    from tests.core.test_csp import INLINE

    client = Client()
    client.force_login(make_user(role))
    widget_key_create(name="shop", allowed_origins=["https://shop.example"], user=None)
    run = evaluation_create(cutoff=START.replace(day=7), k=5, kinds=["purchase"], user=None)

    responses = {path: client.get(path) for path in [*PAGES, f"/recommend/evaluations/{run.pk}/"]}

    assert {path: r.status_code for path, r in responses.items()} == dict.fromkeys(responses, 200)
    assert {path: INLINE.findall(r.content.decode()) for path, r in responses.items()} == dict.fromkeys(responses, [])


def test_item_explorer_shows_similar_items_with_reasons(make_user, shop_items):
    client = Client()
    client.force_login(make_user("merchandiser"))

    page = client.get("/recommend/items/k0/").content.decode()

    assert "Red Ceramic Mug" in page
    assert page.count('class="recommendation"') >= 3
    assert "Similar to Red Ceramic Mug" in page or "Often bought with Red Ceramic Mug" in page


def test_customer_page_shows_history_and_reasoned_recommendations(make_user, shop_items):
    client = Client()
    client.force_login(make_user("merchandiser"))

    page = client.get("/recommend/customers/", {"user": "c0"}).content.decode()

    assert "Red Ceramic Mug" in page  # bought (history)
    assert page.count('class="recommendation"') >= 3 and 'class="reason"' in page


def test_offline_evaluation_runs_and_its_page_shows_the_results(make_user, shop_items):
    client = Client()
    client.force_login(make_user("merchandiser"))

    response = client.post("/recommend/evaluations/", {"cutoff": (START.replace(day=7)).isoformat(), "k": 5,
                                                       "kinds": ["purchase"]})

    run = EvaluationRun.objects.get()
    assert response.status_code == 302 and run.status == "succeeded", run.error
    results = run.results["results"]
    assert {"popularity", "cooccurrence", "content", "blend"} <= set(results)
    assert 0.0 <= results["blend"]["all"]["recall@5"] <= 1.0
    assert run.results["split"]["test_pairs"] > 0
    page = client.get(f"/recommend/evaluations/{run.pk}/").content.decode()
    assert 'id="evaluation-chart"' in page and "recall@5" in page and "popularity" in page


def test_an_evaluation_without_test_events_fails_with_the_reason(shop_items):
    run = evaluation_create(cutoff=START.replace(year=2030), k=5, kinds=["purchase"], user=None)

    run.refresh_from_db()
    assert run.status == "failed" and "choose an earlier cutoff" in run.error


def test_import_and_ab_pages_post(make_user, shop_items):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(make_user("merchandiser"))

    imported = client.post("/recommend/imports/", {"file": SimpleUploadedFile("c.csv", b"external_id,title\nz1,Z\n")})
    refused = client.post("/recommend/imports/", {"file": SimpleUploadedFile("c.csv", b"\xff\xfe\n")}, follow=True)
    started = client.post("/recommend/abtests/", {
        "name": "t", "a_name": "A", "b_name": "B",
        **{f"{p}_{m}": 1 for p in "ab" for m in MEMBERS}})

    assert imported.status_code == 302 and "/recommend/imports/" in imported["Location"]
    assert "not UTF-8" in refused.content.decode()
    assert started.status_code == 302
    assert "Wilson" in client.get(started["Location"]).content.decode()


@pytest.mark.parametrize(("role", "shown"), [("merchandiser", True), ("admin", True), ("analyst", False)])
def test_the_nav_links_the_dashboard_for_merchandisers_only(make_user, role, shown):
    client = Client()
    client.force_login(make_user(role))

    page = client.get("/").content.decode()
    nav = page[page.index('<nav class="nav">'):page.index("</nav>")]
    assert ('href="/recommend/"' in nav) is shown


def test_explorer_lists_are_ordered_by_the_blended_score_they_show(make_user, shop_items):
    import re

    client = Client()
    client.force_login(make_user("merchandiser"))

    for path in ("/recommend/items/k0/", "/recommend/customers/?user=c0"):
        page = client.get(path).content.decode()
        scores = [float(v) for v in re.findall(r'<span class="score">([0-9.]+)</span>', page)]
        assert "Blended score" in page and len(scores) >= 3
        assert scores == sorted(scores, reverse=True), path
        assert re.search(r'class="muted contributions"[^>]*>(content|co-occurrence|ALS|trending) \d\.\d\d', page)
    explorer = client.get("/recommend/items/k0/").content.decode()
    assert re.search(r"(content|co-occurrence) \d\.\d\d( · (content|co-occurrence) \d\.\d\d)?</span>", explorer)
