"""Who may reach what: every page, API endpoint and socket against every kind of caller.

One parametrized case per (endpoint, caller). Callers: anonymous, a signed-in user without a
role, each role, and a second user of the roles that own objects (``agent_peer``,
``analyst_peer``). The agents own the intent objects and the analysts the sentiment ones
(``created_by``); a second user of the same role sees and acts on them like their creator,
because the model dashboard is a team's shared workspace: visibility follows the model role
(apps/mlops/permissions.py), never the creator.

The expected answers are written out here from the role rules, not computed from the code:
agents see intent, chat-lm and embedder models; analysts sentiment, ner and embedder;
merchandisers embedder; admins everything. Objects of an invisible role answer 404, as if
they did not exist; a role without the right to act gets 403; pages send anonymous visitors
to the login page, the API answers 401. Every 200 answer is also searched for the markers of
the objects the caller may not see ("never another role's data").

``test_every_route_is_in_the_matrix`` fails when a URL or socket route is added without a
row here, so the matrix stays complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from apps.mlops.models import ModelVersion
from tests.chat.matrix import kb_access_objects
from tests.chat.matrix_console import CONSOLE_ROUTE_IDS, console_access_objects
from tests.chat.matrix_widget import WIDGET_ROUTE_IDS, widget_access_objects, widget_route_form
from tests.core.ws import ORIGIN, TIMEOUT, run
from tests.mlops.factories import (
    GOOD_CSV,
    DatasetFactory,
    ModelVersionFactory,
    TrainingJobFactory,
    UserFactory,
    isolate,
)
from tests.recommend.factories import access_matrix_objects, recommend_isolate
from tests.sentiment.fixtures_alerts import alert_access_objects
from tests.sentiment.matrix import sentiment_access_objects

pytestmark = pytest.mark.django_db

ANON, NOROLE = "anonymous", "norole"
ROLE_OF = {
    "admin": "admin", "agent": "agent", "agent_peer": "agent", "analyst": "analyst",
    "analyst_peer": "analyst", "merchandiser": "merchandiser",
}
WHO = (ANON, NOROLE, *ROLE_OF)
KINDS = ("intent", "sentiment")  # model roles whose objects the test creates, with their owners:
OWNER = {"intent": "agent", "sentiment": "analyst"}
SEES = {
    "intent": {"admin", "agent"},
    "chat-lm": {"admin", "agent"},
    "sentiment": {"admin", "analyst"},
    "ner": {"admin", "analyst"},
    "embedder": {"admin", "agent", "analyst", "merchandiser"},
}
TRAINS = {"intent": {"admin", "agent"}, "sentiment": {"admin", "analyst"}}
UPLOADERS = {"admin", "agent", "analyst"}  # roles that can train some model, so may upload data
LOGIN, ADMIN_LOGIN = "-> login page", "-> admin login page"
PASSWORD = "pw-for-tests-123"  # UserFactory's
Expect = Callable[[str], "int | str"]


# --- expectations: who -> status code, or a redirect to a login page


def page(rule: Callable[[str], int]) -> Expect:
    """A page behind ``role_required``: anonymous -> login, no role -> 403, else ``rule(role)``."""
    return lambda who: LOGIN if who == ANON else 403 if who == NOROLE else rule(ROLE_OF[who])


def api(rule: Callable[[str], int]) -> Expect:
    """An API view behind ``HasRole``: anonymous -> 401, no role -> 403, else ``rule(role)``."""
    return lambda who: 401 if who == ANON else 403 if who == NOROLE else rule(ROLE_OF[who])


def signed_in(ok: int, anonymous: int | str) -> Expect:
    return lambda who: anonymous if who == ANON else ok


def seen(kind: str, ok: int = 200) -> Callable[[str], int]:
    return lambda role: ok if role in SEES[kind] else 404


def trains(kind: str, ok: int) -> Callable[[str], int]:
    return lambda role: 404 if role not in SEES[kind] else ok if role in TRAINS.get(kind, ()) else 403


def admin_after_visible(kind: str, ok: int) -> Callable[[str], int]:
    return lambda role: 404 if role not in SEES[kind] else ok if role == "admin" else 403


def admin_only(ok: int) -> Callable[[str], int]:
    return lambda role: ok if role == "admin" else 403


def every(ok: int) -> Callable[[str], int]:
    return lambda role: ok


# --- the matrix


Check = Callable[[Any, str, "Ids"], None]  # (response, who, ids): extra assertions on a 200


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # formatted with the objects' ids: {intent_dataset}, {sentiment_job}, ...
    expect: Expect
    api: bool = False
    data: Callable[[Ids], dict[str, Any]] | None = None
    needs: tuple[str, ...] = ()  # ids made on demand before the request (see Ids)
    check: Check | None = None


class Ids(dict):
    """Object ids by name; ``agent_token`` (an API token of the agent owner) is made on first use."""

    def __init__(self, owners: dict[str, Any], http: Any) -> None:
        super().__init__()
        self.owners = owners
        self.http = http  # the token endpoint reads no credentials: any client will do

    def __missing__(self, key: str) -> int:
        if key != "agent_token":
            raise KeyError(key)
        response = self.http.post("/api/auth/token/", {"username": self.owners["agent"].username,
                                                       "password": PASSWORD})
        assert response.status_code == 200, response.content
        self[key] = response.json()["token_id"]
        return self[key]


def _own_tokens_only(response: Any, who: str, ids: Ids) -> None:
    listed = {row["id"] for row in response.json()}
    assert (ids["agent_token"] in listed) == (who == "agent"), "a token list shows another user's token"
    assert [row["current"] for row in response.json()].count(True) == 1


def _is_caller(response: Any, who: str, ids: Ids) -> None:
    assert response.json()["username"] == ids.caller


def _visible_roles(response: Any, who: str, ids: Ids) -> None:
    assert {row["role"] for row in response.json()} == {r for r, seers in SEES.items() if ROLE_OF[who] in seers}


def _upload(role: str) -> Callable[[Ids], dict[str, Any]]:
    return lambda ids: {"name": f"upload-{role}", "role": role,
                        "file": SimpleUploadedFile("data.csv", GOOD_CSV, content_type="text/csv")}


def _start_job(kind: str) -> Callable[[Ids], dict[str, Any]]:
    return lambda ids: {"dataset": ids[f"{kind}_dataset"], "method": "fewshot", "epochs": 1,
                        "allow_new_labels": True}


_FORM_JOB = {"method": "fewshot", "epochs": 1, "batch_size": 16, "allow_new_labels": "on"}
ROLLBACK_ROLES = ("chat-lm", "ner", "embedder")  # none has an active version: nothing to roll back
PAGE_CASES = [
    Case("home", "GET", "/", signed_in(200, LOGIN)),
    Case("healthz", "GET", "/healthz", lambda who: 200),
    Case("login", "GET", "/accounts/login/", lambda who: 200 if who == ANON else 302),
    Case("logout", "POST", "/accounts/logout/", lambda who: 302),
    Case("admin site", "GET", "/admin/", lambda who: 200 if who == "admin" else ADMIN_LOGIN),
    Case("audit page", "GET", "/audit/", page(admin_only(200))),
    Case("favicon", "GET", "/favicon.ico", lambda who: 302),
    Case("models", "GET", "/models/", page(every(200))),
    *[Case(f"role {r}", "GET", f"/models/roles/{r}/", page(seen(r))) for r in SEES],
    *[Case(f"rollback {r}", "POST", f"/models/roles/{r}/rollback/", page(admin_after_visible(r, 302)))
      for r in ROLLBACK_ROLES],
    *[Case(f"version {k}", "GET", f"/models/versions/{{{k}_candidate}}/", page(seen(k)))
      for k in (*KINDS, "embedder")],
    *[Case(f"promote {k}", "POST", f"/models/versions/{{{k}_active}}/promote/", page(admin_after_visible(k, 302)))
      for k in KINDS],
    *[Case(f"evaluate {k}", "POST", f"/models/versions/{{{k}_candidate}}/evaluate/", page(trains(k, 302)))
      for k in KINDS],
    # Admins are sent back to the version page (its artifact is missing here: an error message).
    *[Case(f"abstention {k}", "POST", f"/models/versions/{{{k}_candidate}}/abstention/",
           page(admin_after_visible(k, 302)), data=lambda ids: {"threshold": "0.5"}) for k in KINDS],
    Case("datasets", "GET", "/models/datasets/", page(every(200))),
    Case("upload form", "GET", "/models/datasets/upload/", page(lambda role: 200 if role in UPLOADERS else 403)),
    # Agents may upload, but not for the analysts' model role: the form refuses the choice.
    Case("upload sentiment", "POST", "/models/datasets/upload/",
         page(lambda role: 302 if role in TRAINS["sentiment"] else 400 if role in UPLOADERS else 403),
         data=_upload("sentiment")),
    *[Case(f"dataset {k}", "GET", f"/models/datasets/{{{k}_dataset}}/", page(seen(k))) for k in KINDS],
    *[Case(f"start job {k}", "POST", f"/models/datasets/{{{k}_dataset}}/", page(trains(k, 302)),
           data=lambda ids: _FORM_JOB) for k in KINDS],
    Case("jobs", "GET", "/models/jobs/", page(every(200))),
    *[Case(f"job {k}", "GET", f"/models/jobs/{{{k}_job}}/", page(seen(k))) for k in KINDS],
    *[Case(f"cancel job {k}", "POST", f"/models/jobs/{{{k}_job}}/cancel/", page(trains(k, 302))) for k in KINDS],
]
API_CASES = [
    Case("me", "GET", "/api/auth/me/", signed_in(200, 401), api=True, check=_is_caller),
    Case("token rotate", "POST", "/api/auth/token/rotate/", signed_in(200, 401), api=True),
    Case("token revoke", "POST", "/api/auth/token/revoke/", signed_in(204, 401), api=True),
    Case("tokens", "GET", "/api/auth/tokens/", signed_in(200, 401), api=True, needs=("agent_token",),
         check=_own_tokens_only),
    # A token is its owner's alone: anybody else, admins included, gets 404.
    Case("revoke agent's token", "DELETE", "/api/auth/tokens/{agent_token}/",
         lambda who: 401 if who == ANON else 204 if who == "agent" else 404, api=True),
    Case("ws ticket", "POST", "/api/auth/ws-ticket/", signed_in(200, 401), api=True),
    Case("schema", "GET", "/api/schema/", signed_in(200, 401), api=True),
    Case("docs", "GET", "/api/docs/", signed_in(200, LOGIN), api=True),
    Case("redoc", "GET", "/api/redoc/", signed_in(200, LOGIN), api=True),
    Case("audit events", "GET", "/api/audit/events/", api(admin_only(200)), api=True),
    Case("roles", "GET", "/api/mlops/roles/", api(every(200)), api=True, check=_visible_roles),
    *[Case(f"rollback {r}", "POST", f"/api/mlops/roles/{r}/rollback/", api(admin_only(409)), api=True)
      for r in ROLLBACK_ROLES],
    Case("datasets", "GET", "/api/mlops/datasets/", api(every(200)), api=True),
    *[Case(f"upload {k}", "POST", "/api/mlops/datasets/", api(lambda role, k=k: 201 if role in TRAINS[k] else 403),
           api=True, data=_upload(k)) for k in KINDS],
    *[Case(f"dataset {k}", "GET", f"/api/mlops/datasets/{{{k}_dataset}}/", api(seen(k)), api=True) for k in KINDS],
    Case("jobs", "GET", "/api/mlops/jobs/", api(every(200)), api=True),
    # An invisible dataset reads as an unknown one: 400 on the dataset field.
    *[Case(f"start job {k}", "POST", "/api/mlops/jobs/", api(lambda role, k=k: 201 if role in TRAINS[k] else 400),
           api=True, data=_start_job(k)) for k in KINDS],
    *[Case(f"job {k}", "GET", f"/api/mlops/jobs/{{{k}_job}}/", api(seen(k)), api=True) for k in KINDS],
    *[Case(f"cancel job {k}", "POST", f"/api/mlops/jobs/{{{k}_job}}/cancel/", api(trains(k, 200)), api=True)
      for k in KINDS],
    Case("versions", "GET", "/api/mlops/versions/", api(every(200)), api=True),
    *[Case(f"version {k}", "GET", f"/api/mlops/versions/{{{k}_candidate}}/", api(seen(k)), api=True)
      for k in (*KINDS, "embedder")],
    # Admin-only views check the role before looking the object up: 403, never 404, for others.
    *[Case(f"promote {k}", "POST", f"/api/mlops/versions/{{{k}_active}}/promote/", api(admin_only(409)), api=True)
      for k in KINDS],
    *[Case(f"evaluate {k}", "POST", f"/api/mlops/versions/{{{k}_candidate}}/evaluate/", api(trains(k, 202)),
           api=True) for k in KINDS],
    *[Case(f"abstention {k}", "GET", f"/api/mlops/versions/{{{k}_candidate}}/abstention/", api(seen(k)), api=True)
      for k in KINDS],
    # The factory versions have no artifact: an admin gets past the checks to 409.
    *[Case(f"set abstention {k}", "PATCH", f"/api/mlops/versions/{{{k}_candidate}}/abstention/",
           api(admin_only(409)), api=True, data=lambda ids: {"threshold": 0.5}) for k in KINDS],
    # Explanations: the candidates' artifacts do not exist here, so a caller who may see the version
    # gets past the access check to 503 (nothing loads); an embedder version is no classifier (400).
    *[Case(f"explain {k}", "POST", f"/api/mlops/versions/{{{k}_candidate}}/explain/", api(seen(k, 503)),
           api=True, data=lambda ids: {"texts": ["hello"]}) for k in KINDS],
    Case("explain embedder", "POST", "/api/mlops/versions/{embedder_candidate}/explain/",
         api(seen("embedder", 400)), api=True, data=lambda ids: {"texts": ["hello"]}),
]
# The inference API, with no model able to serve (the fixture makes every role unavailable):
# a caller allowed to use a model gets past the access check to 503 (or to 400 for naming a
# model of another role); one who is not gets 403. Nothing is loaded.
SERVING_CASES = [
    Case("v1 models", "GET", "/v1/models", api(every(200)), api=True),
    *[Case(f"v1 model {k}", "GET", f"/v1/models/{k}-marker-candidate", api(seen(k)), api=True) for k in KINDS],
    Case("v1 unknown endpoint", "GET", "/v1/files", lambda who: 404, api=True),
    Case("v1 embeddings", "POST", "/v1/embeddings", api(every(400)), api=True,
         data=lambda ids: {"model": "chat-lm", "input": "hello"}),
    Case("v1 chat", "POST", "/v1/chat/completions", api(lambda role: 400 if role in SEES["chat-lm"] else 403),
         api=True, data=lambda ids: {"model": "embedder", "messages": [{"role": "user", "content": "hi"}]}),
    *[Case(f"classify {k}", "POST", "/api/ml/classify/", api(lambda role, k=k: 503 if role in SEES[k] else 403),
           api=True, data=lambda ids, k=k: {"role": k, "texts": ["hello"]}) for k in KINDS],
    Case("entities", "POST", "/api/ml/entities/", api(lambda role: 503 if role in SEES["ner"] else 403), api=True,
         data=lambda ids: {"texts": ["hello"]}),
    Case("serving stats", "GET", "/api/ml/stats/", api(admin_only(200)), api=True),
]
# Recommendations (apps/recommend): merchandisers and admins; the widget's two endpoints are
# public (a widget key, checked after the query: without one every caller gets 400). Nothing is
# fitted here, so a merchandiser's recommendations answer 503; the A/B test in the world runs,
# so another cannot start (400).
MERCHANDISERS = {"admin", "merchandiser"}


def merch(ok: int) -> Callable[[str], int]:
    return lambda role: ok if role in MERCHANDISERS else 403


def _catalogue_file(ids: Ids) -> dict[str, Any]:
    return {"file": SimpleUploadedFile("items.csv", b"external_id,title\nnew-item,New\n", content_type="text/csv")}


_VARIANTS = [{"name": "A", "weights": {"popularity": 1}}, {"name": "B", "weights": {"content": 1}}]
RECOMMEND_CASES = [
    Case("recommend home", "GET", "/recommend/", page(merch(200))),
    Case("recommend import", "POST", "/recommend/imports/", page(merch(302)), data=_catalogue_file),
    Case("recommend import page", "GET", "/recommend/imports/{rec_import}/", page(merch(200))),
    Case("recommend rebuild", "POST", "/recommend/index/rebuild/", page(merch(302))),
    Case("recommend fit", "POST", "/recommend/fit/", page(merch(302))),
    Case("recommend item", "GET", "/recommend/items/rec-item/", page(merch(200))),
    Case("recommend customers", "GET", "/recommend/customers/", page(merch(200))),
    Case("recommend abtests", "GET", "/recommend/abtests/", page(merch(200))),
    Case("recommend abtest", "GET", "/recommend/abtests/{rec_abtest}/", page(merch(200))),
    Case("recommend abtest stop", "POST", "/recommend/abtests/{rec_abtest}/stop/", page(merch(302))),
    Case("recommend evaluations", "GET", "/recommend/evaluations/", page(merch(200))),
    Case("recommend evaluation", "GET", "/recommend/evaluations/{rec_evaluation}/", page(merch(200))),
    Case("recommend widget keys page", "GET", "/recommend/widget/", page(merch(200))),
    Case("recommend widget key rotate", "POST", "/recommend/widget/{rec_widget_key}/rotate/", page(merch(200))),
    Case("recommend widget key revoke", "POST", "/recommend/widget/{rec_widget_key}/revoke/", page(merch(302))),
    Case("rec items", "GET", "/api/recommend/items/", api(merch(200)), api=True),
    Case("rec item create", "POST", "/api/recommend/items/", api(merch(201)), api=True,
         data=lambda ids: {"external_id": "made", "title": "Made"}),
    Case("rec item", "GET", "/api/recommend/items/rec-item/", api(merch(200)), api=True),
    Case("rec similar", "GET", "/api/recommend/items/rec-item/similar/", api(merch(200)), api=True),
    Case("rec import", "POST", "/api/recommend/imports/", api(merch(202)), api=True, data=_catalogue_file),
    Case("rec import status", "GET", "/api/recommend/imports/{rec_import}/", api(merch(200)), api=True),
    Case("rec events", "POST", "/api/recommend/events/", api(merch(200)), api=True,
         data=lambda ids: {"events": [{"event_id": "e1", "user": "u1", "item": "rec-item", "kind": "view"}]}),
    Case("rec merge", "POST", "/api/recommend/sessions/merge/", api(merch(200)), api=True,
         data=lambda ids: {"session": "s1", "user": "u1"}),
    Case("rec click", "POST", "/api/recommend/clicks/", api(merch(404)), api=True,
         data=lambda ids: {"impression_id": "00000000-0000-0000-0000-000000000000"}),
    Case("rec user", "GET", "/api/recommend/users/u1/recommendations/", api(merch(503)), api=True),
    Case("rec rebuild", "POST", "/api/recommend/index/rebuild/", api(merch(202)), api=True),
    Case("rec fit", "POST", "/api/recommend/fit/", api(merch(202)), api=True),
    Case("rec abtests", "GET", "/api/recommend/abtests/", api(merch(200)), api=True),
    Case("rec abtest create", "POST", "/api/recommend/abtests/", api(merch(400)), api=True,
         data=lambda ids: {"name": "second", "variants": _VARIANTS}),
    Case("rec abtest", "GET", "/api/recommend/abtests/{rec_abtest}/", api(merch(200)), api=True),
    Case("rec abtest stop", "POST", "/api/recommend/abtests/{rec_abtest}/stop/", api(merch(200)), api=True,
         data=lambda ids: {"winner": "A"}),
    Case("rec evaluations", "GET", "/api/recommend/evaluations/", api(merch(200)), api=True),
    Case("rec evaluation create", "POST", "/api/recommend/evaluations/", api(merch(202)), api=True,
         data=lambda ids: {"cutoff": "2025-01-01T00:00:00Z"}),
    Case("rec evaluation", "GET", "/api/recommend/evaluations/{rec_evaluation}/", api(merch(200)), api=True),
    Case("rec widget keys", "GET", "/api/recommend/widget-keys/", api(merch(200)), api=True),
    Case("rec widget key create", "POST", "/api/recommend/widget-keys/", api(merch(201)), api=True,
         data=lambda ids: {"name": "shop", "allowed_origins": ["https://shop.example"]}),
    Case("rec widget key rotate", "POST", "/api/recommend/widget-keys/{rec_widget_key}/rotate/", api(merch(200)),
         api=True),
    Case("rec widget key revoke", "POST", "/api/recommend/widget-keys/{rec_widget_key}/revoke/", api(merch(200)),
         api=True),
    Case("rec widget", "GET", "/api/recommend/widget/recommendations/", lambda who: 400, api=True),
    Case("rec widget click", "POST", "/api/recommend/widget/clicks/", lambda who: 400, api=True),
]
# Sentiment (apps/sentiment): analysts and admins. Queued work (polls, scoring, rescoring) is
# sent after the test's transaction commits, which it never does here: nothing runs.
ANALYSTS = {"admin", "analyst"}


def analysts(ok: int) -> Callable[[str], int]:
    return lambda role: ok if role in ANALYSTS else 403


def _documents_file(ids: Ids) -> dict[str, Any]:
    return {"file": SimpleUploadedFile("news.csv", b"text\nMatrix Corp misses\n", content_type="text/csv")}


def _prices_file(ids: Ids) -> dict[str, Any]:
    return {"file": SimpleUploadedFile("prices.csv", b"symbol,date,close\nMTX,2025-03-03,10\n")}


SENTIMENT_CASES = [
    Case("sent sources", "GET", "/api/sentiment/sources/", api(analysts(200)), api=True),
    Case("sent source create", "POST", "/api/sentiment/sources/", api(analysts(201)), api=True,
         data=lambda ids: {"name": "new wire", "kind": "push"}),
    Case("sent source", "GET", "/api/sentiment/sources/{sent_push}/", api(analysts(200)), api=True),
    Case("sent source update", "PATCH", "/api/sentiment/sources/{sent_feed}/", api(analysts(200)), api=True,
         data=lambda ids: {"poll_interval_s": 600}),
    Case("sent source delete", "DELETE", "/api/sentiment/sources/{sent_feed}/", api(analysts(204)), api=True),
    Case("sent source poll", "POST", "/api/sentiment/sources/{sent_feed}/poll/", api(analysts(202)), api=True),
    Case("sent push", "POST", "/api/sentiment/sources/{sent_push}/documents/", api(analysts(200)), api=True,
         data=lambda ids: {"documents": [{"text": "Matrix Corp upgraded", "external_id": "m-1"}]}),
    Case("sent upload", "POST", "/api/sentiment/uploads/", api(analysts(200)), api=True, data=_documents_file),
    Case("sent documents", "GET", "/api/sentiment/documents/", api(analysts(200)), api=True),
    Case("sent document", "GET", "/api/sentiment/documents/{sent_doc}/", api(analysts(200)), api=True),
    Case("sent entities", "GET", "/api/sentiment/entities/", api(analysts(200)), api=True),
    Case("sent entity create", "POST", "/api/sentiment/entities/", api(analysts(201)), api=True,
         data=lambda ids: {"symbol": "NEWCO", "name": "New Company"}),
    Case("sent entity", "GET", "/api/sentiment/entities/MTX/", api(analysts(200)), api=True),
    Case("sent entity update", "PATCH", "/api/sentiment/entities/MTX/", api(analysts(200)), api=True,
         data=lambda ids: {"aliases": ["The Matrix"]}),
    Case("sent entity delete", "DELETE", "/api/sentiment/entities/MTX/", api(analysts(204)), api=True),
    Case("sent series", "GET", "/api/sentiment/entities/MTX/series/", api(analysts(200)), api=True),
    Case("sent prices", "GET", "/api/sentiment/entities/MTX/prices/", api(analysts(200)), api=True),
    Case("sent prices import", "POST", "/api/sentiment/prices/", api(analysts(200)), api=True, data=_prices_file),
    Case("sent watchlists", "GET", "/api/sentiment/watchlists/", api(analysts(200)), api=True),
    Case("sent watchlist create", "POST", "/api/sentiment/watchlists/", api(analysts(201)), api=True,
         data=lambda ids: {"name": "new list", "entities": ["MTX"]}),
    Case("sent watchlist", "GET", "/api/sentiment/watchlists/{sent_watchlist}/", api(analysts(200)), api=True),
    Case("sent watchlist update", "PATCH", "/api/sentiment/watchlists/{sent_watchlist}/", api(analysts(200)),
         api=True, data=lambda ids: {"entities": []}),
    Case("sent watchlist delete", "DELETE", "/api/sentiment/watchlists/{sent_watchlist}/", api(analysts(204)),
         api=True),
    Case("sent rescore", "POST", "/api/sentiment/rescore/", api(analysts(202)), api=True,
         data=lambda ids: {"version": "sentiment-marker-active"}),
]
# The analysts' dashboard and the alert side of /api/sentiment/ (helper sentui). Deliveries wait
# for a commit that never comes; the explanation finds no model (the fixture makes none serve): 503.
_RULE = {"name": "matrix new rule", "entity": "MTX", "condition": "level_below", "threshold": -0.3}
_RULE_FORM = {"name": "matrix form rule", "entity": "", "watchlist": "{sent_watchlist}", "condition": "level_below",
              "threshold": "-0.3", "width_s": "3600", "window": "1", "baseline": "24", "min_volume": "3",
              "cooldown_s": "3600", "enabled": "on"}
_BACKTEST_FORM = {"basis": "live", "min_volume": "3", "min_abs": "0.05", "permutations": "0", "symbols": ""}
SENTIMENT_UI_CASES = [
    Case("sent home", "GET", "/sentiment/", page(analysts(200))),
    Case("sent entity page", "GET", "/sentiment/entities/MTX/", page(analysts(200))),
    Case("sent document page", "GET", "/sentiment/documents/{sent_doc}/", page(analysts(200))),
    Case("sent correct", "POST", "/sentiment/documents/{sent_doc}/correct/", page(analysts(302)),
         data=lambda ids: {"label": "positive"}),
    Case("sent alerts page", "GET", "/sentiment/alerts/", page(analysts(200))),
    Case("sent alert page", "GET", "/sentiment/alerts/{sent_alert}/", page(analysts(200))),
    Case("sent alert ack page", "POST", "/sentiment/alerts/{sent_alert}/acknowledge/", page(analysts(302))),
    Case("sent alert resolve page", "POST", "/sentiment/alerts/{sent_alert}/resolve/", page(analysts(302))),
    Case("sent delivery retry page", "POST", "/sentiment/alerts/{sent_alert}/deliveries/{sent_delivery}/retry/",
         page(analysts(302))),
    Case("sent rules page", "GET", "/sentiment/rules/", page(analysts(200))),
    Case("sent rule create page", "POST", "/sentiment/rules/", page(analysts(302)),
         data=lambda ids: {k: v.format_map(ids) for k, v in _RULE_FORM.items()}),
    Case("sent rule page", "GET", "/sentiment/rules/{sent_rule}/", page(analysts(200))),
    Case("sent rule delete page", "POST", "/sentiment/rules/{sent_doomed_rule}/delete/", page(analysts(302))),
    Case("sent corrections page", "GET", "/sentiment/corrections/", page(analysts(200))),
    Case("sent corrections export page", "POST", "/sentiment/corrections/export/", page(analysts(302))),
    Case("sent backtests page", "GET", "/sentiment/backtests/", page(analysts(200))),
    Case("sent backtest run page", "POST", "/sentiment/backtests/", page(analysts(302)),
         data=lambda ids: _BACKTEST_FORM),
    Case("sent backtest page", "GET", "/sentiment/backtests/{sent_backtest}/", page(analysts(200))),
    Case("sent sources page", "GET", "/sentiment/sources/", page(analysts(200))),
    Case("sent upload page", "POST", "/sentiment/sources/upload/", page(analysts(200)), data=_documents_file),
    Case("sent poll page", "POST", "/sentiment/sources/{sent_feed}/poll/", page(analysts(302))),
    Case("sent watchlists page", "GET", "/sentiment/watchlists/", page(analysts(200))),
    Case("sent watchlist page", "GET", "/sentiment/watchlists/{sent_watchlist}/", page(analysts(200))),
    Case("sent entity edit page", "GET", "/sentiment/watchlists/entities/MTX/", page(analysts(200))),
    Case("sent alerts", "GET", "/api/sentiment/alerts/", api(analysts(200)), api=True),
    Case("sent alert", "GET", "/api/sentiment/alerts/{sent_alert}/", api(analysts(200)), api=True),
    Case("sent alert ack", "POST", "/api/sentiment/alerts/{sent_alert}/acknowledge/", api(analysts(200)), api=True),
    Case("sent alert resolve", "POST", "/api/sentiment/alerts/{sent_alert}/resolve/", api(analysts(200)), api=True),
    Case("sent rules", "GET", "/api/sentiment/rules/", api(analysts(200)), api=True),
    Case("sent rule create", "POST", "/api/sentiment/rules/", api(analysts(201)), api=True, data=lambda ids: _RULE),
    Case("sent rule", "GET", "/api/sentiment/rules/{sent_rule}/", api(analysts(200)), api=True),
    Case("sent rule update", "PATCH", "/api/sentiment/rules/{sent_rule}/", api(analysts(200)), api=True,
         data=lambda ids: {"threshold": -0.4}),
    Case("sent rule delete", "DELETE", "/api/sentiment/rules/{sent_rule}/", api(analysts(204)), api=True),
    Case("sent corrections", "GET", "/api/sentiment/corrections/", api(analysts(200)), api=True),
    Case("sent correction create", "POST", "/api/sentiment/corrections/", api(analysts(201)), api=True,
         data=lambda ids: {"document": ids["sent_doc"], "label": "positive"}),
    # No corrections in the world: past the access check to 400 (nothing to export).
    Case("sent corrections export", "POST", "/api/sentiment/corrections/export/", api(analysts(400)), api=True,
         data=lambda ids: {}),
    Case("sent backtests", "GET", "/api/sentiment/backtests/", api(analysts(200)), api=True),
    Case("sent backtest create", "POST", "/api/sentiment/backtests/", api(analysts(201)), api=True,
         data=lambda ids: {"permutations": 0}),
    Case("sent backtest", "GET", "/api/sentiment/backtests/{sent_backtest}/", api(analysts(200)), api=True),
    Case("sent explain", "POST", "/api/sentiment/documents/{sent_doc}/explain/", api(analysts(503)), api=True,
         data=lambda ids: {}),
]
# Knowledge base (apps/chat): agents and admins. Index tasks wait for a commit that never comes.
AGENTS = {"admin", "agent"}


def kb_agents(ok: int) -> Callable[[str], int]:
    return lambda role: ok if role in AGENTS else 403


def _kb_file(ids: Ids, field: str = "files") -> dict[str, Any]:
    return {field: SimpleUploadedFile("faq.csv", b"title,body\nNew answer,Some text\n", content_type="text/csv")}


_KB_ARTICLE = {"title": "Matrix new article", "body": "Text", "tags": "a, b"}
KB_CASES = [
    Case("kb home", "GET", "/kb/", page(kb_agents(200))),
    Case("kb new article form", "GET", "/kb/articles/new/", page(kb_agents(200))),
    Case("kb new article", "POST", "/kb/articles/new/", page(kb_agents(302)), data=lambda ids: _KB_ARTICLE),
    Case("kb article", "GET", "/kb/articles/{kb_article}/", page(kb_agents(200))),
    Case("kb article edit", "POST", "/kb/articles/{kb_article}/edit/", page(kb_agents(302)),
         data=lambda ids: _KB_ARTICLE),
    Case("kb article delete", "POST", "/kb/articles/{kb_doomed}/delete/", page(kb_agents(302))),
    Case("kb imports page", "GET", "/kb/imports/", page(kb_agents(200))),
    Case("kb import", "POST", "/kb/imports/", page(kb_agents(302)), data=_kb_file),
    Case("kb import page", "GET", "/kb/imports/{kb_import}/", page(kb_agents(200))),
    Case("kb rebuild", "POST", "/kb/index/rebuild/", page(kb_agents(302))),
    Case("kb api articles", "GET", "/api/chat/kb/articles/", api(kb_agents(200)), api=True),
    Case("kb api article create", "POST", "/api/chat/kb/articles/", api(kb_agents(201)), api=True,
         data=lambda ids: {**_KB_ARTICLE, "tags": ["a"]}),
    Case("kb api article", "GET", "/api/chat/kb/articles/{kb_article}/", api(kb_agents(200)), api=True),
    Case("kb api article update", "PATCH", "/api/chat/kb/articles/{kb_article}/", api(kb_agents(200)), api=True,
         data=lambda ids: {"published": False}),
    Case("kb api article delete", "DELETE", "/api/chat/kb/articles/{kb_doomed}/", api(kb_agents(204)), api=True),
    # Without ?q= (routes here carry no query string): past the access check to 400.
    Case("kb api search", "GET", "/api/chat/kb/search/", api(kb_agents(400)), api=True),
    # The API takes "files" (several) or "file" (one); the matrix sends multipart for "file".
    Case("kb api import", "POST", "/api/chat/kb/imports/", api(kb_agents(201)), api=True,
         data=lambda ids: _kb_file(ids, "file")),
    Case("kb api import status", "GET", "/api/chat/kb/imports/{kb_import}/", api(kb_agents(200)), api=True),
    Case("kb api rebuild", "POST", "/api/chat/kb/index/rebuild/", api(kb_agents(202)), api=True),
]
# Chat learning loop and analytics: agents and admins. With no feedback yet an export is refused
# (page: 200 with the reason; API: 400 export_rejected), past the access check.
CHAT_LOOP_CASES = [
    Case("chat exports page", "GET", "/chat/exports/", page(kb_agents(200))),
    Case("chat export", "POST", "/chat/exports/", page(kb_agents(200)), data=lambda ids: {"kind": "intent"}),
    Case("chat unanswered page", "GET", "/chat/unanswered/", page(kb_agents(200))),
    Case("chat analytics page", "GET", "/chat/analytics/", page(kb_agents(200))),
    Case("chat api export", "POST", "/api/chat/exports/", api(kb_agents(400)), api=True,
         data=lambda ids: {"kind": "chat"}),
    Case("chat api unanswered", "GET", "/api/chat/unanswered/", api(kb_agents(200)), api=True),
    Case("chat api analytics", "GET", "/api/chat/analytics/", api(kb_agents(200)), api=True),
]
# Agent console, saved replies and the agents' REST actions: agents and admins.
_SAVED_REPLY = {"shortcut": "matrix-new", "title": "New", "text": "A saved answer."}
CHAT_CONSOLE_CASES = [
    Case("chat console", "GET", "/chat/console/", page(kb_agents(200))),
    Case("chat saved replies", "GET", "/chat/saved-replies/", page(kb_agents(200))),
    Case("chat saved reply form", "GET", "/chat/saved-replies/new/", page(kb_agents(200))),
    Case("chat saved reply new", "POST", "/chat/saved-replies/new/", page(kb_agents(302)),
         data=lambda ids: _SAVED_REPLY),
    Case("chat saved reply edit", "GET", "/chat/saved-replies/{chat_saved_reply}/edit/", page(kb_agents(200))),
    Case("chat saved reply delete", "POST", "/chat/saved-replies/{chat_saved_reply_doomed}/delete/",
         page(kb_agents(302))),
    Case("chat api take over", "POST", "/api/chat/conversations/{chat_waiting}/take-over/", api(kb_agents(200)),
         api=True, data=lambda ids: {}),
    Case("chat api hand back", "POST", "/api/chat/conversations/{chat_with_agent}/hand-back/",
         api(kb_agents(200)), api=True, data=lambda ids: {}),
    Case("chat api close", "POST", "/api/chat/conversations/{chat_waiting}/close/", api(kb_agents(200)),
         api=True, data=lambda ids: {}),
    Case("chat api agent message", "POST", "/api/chat/conversations/{chat_with_agent}/messages/",
         api(kb_agents(201)), api=True, data=lambda ids: {"text": "Hello from an agent."}),
    Case("chat api draft", "GET", "/api/chat/conversations/{chat_waiting}/draft/", api(kb_agents(200)), api=True),
    Case("chat api correction", "POST", "/api/chat/messages/{chat_reply}/corrections/", api(kb_agents(201)),
         api=True, data=lambda ids: {"text": "A better answer."}),
    Case("chat api saved replies", "GET", "/api/chat/saved-replies/", api(kb_agents(200)), api=True),
    Case("chat api saved reply create", "POST", "/api/chat/saved-replies/", api(kb_agents(201)), api=True,
         data=lambda ids: _SAVED_REPLY),
    Case("chat api saved reply", "GET", "/api/chat/saved-replies/{chat_saved_reply}/", api(kb_agents(200)),
         api=True),
    Case("chat api saved reply update", "PATCH", "/api/chat/saved-replies/{chat_saved_reply}/",
         api(kb_agents(200)), api=True, data=lambda ids: {"title": "Opening hours"}),
    Case("chat api saved reply delete", "DELETE", "/api/chat/saved-replies/{chat_saved_reply_doomed}/",
         api(kb_agents(204)), api=True),
]
# Widget routes: admins. The demo shop and the help page of a published article: everyone.
CHAT_WIDGET_CASES = [
    Case("chat widget routes", "GET", "/chat/routes/", page(admin_only(200))),
    Case("chat widget route new", "POST", "/chat/routes/", page(admin_only(302)),
         data=lambda ids: widget_route_form("matrix-new")),
    Case("chat widget route", "GET", "/chat/routes/{chat_widget_route}/", page(admin_only(200))),
    Case("chat widget route edit", "POST", "/chat/routes/{chat_widget_route}/", page(admin_only(302)),
         data=lambda ids: widget_route_form("matrix-shop")),
    Case("chat demo shop", "GET", "/chat/shop/", lambda who: 200),
    Case("chat help article", "GET", "/chat/help/{kb_article}/", lambda who: 200),
]
# Conversations: anyone may start one (the widget's visitors have no account); a conversation is
# read by its visitor (token), its signed-in customer, agents and admins: to everyone else it
# does not exist (404). The matrix sends no conversation token.
CHAT_CONVERSATION_CASES = [
    Case("chat api start", "POST", "/api/chat/conversations/", lambda who: 201, api=True,
         data=lambda ids: {"route": "matrix-shop"}),
    Case("chat api conversations", "GET", "/api/chat/conversations/", signed_in(200, 401), api=True),
    Case("chat api conversation", "GET", "/api/chat/conversations/{chat_waiting}/",
         lambda who: 200 if ROLE_OF.get(who) in AGENTS else 404, api=True),
    Case("chat api rating", "POST", "/api/chat/conversations/{chat_waiting}/rating/", lambda who: 404, api=True,
         data=lambda ids: {"rating": 5}),
    Case("chat api feedback", "POST", "/api/chat/messages/{chat_reply}/feedback/", lambda who: 404, api=True,
         data=lambda ids: {"helpful": True}),
]
CASES = (PAGE_CASES + API_CASES + SERVING_CASES + RECOMMEND_CASES + SENTIMENT_CASES + SENTIMENT_UI_CASES
         + KB_CASES + CHAT_LOOP_CASES + CHAT_CONSOLE_CASES + CHAT_WIDGET_CASES + CHAT_CONVERSATION_CASES)
# Exercised by every API case (it is how the callers get their tokens), and by tests/accounts.
AUTH_ROUTES = {"api/auth/token/"}


def _hidden_markers(who: str) -> list[str]:
    """Text that must not appear in any answer to ``who``: the names of objects they may not see."""
    role = ROLE_OF.get(who)
    return [f"{kind}-marker" for kind in KINDS if role is None or role not in SEES[kind]]


# --- fixtures


@pytest.fixture(scope="module")
def _clients() -> tuple[Any, Any]:
    """One page client and one API client for the module: a new client builds Django's
    middleware again, and servestatic then re-indexes every static file (most of a request's cost)."""
    from django.test import Client
    from rest_framework.test import APIClient

    return Client(), APIClient()


@pytest.fixture
def page_client(_clients) -> Iterator[Any]:
    client = _clients[0]
    client.cookies.clear()
    yield client
    client.cookies.clear()


@pytest.fixture
def rest_client(_clients) -> Iterator[Any]:
    client = _clients[1]
    client.cookies.clear()
    client.credentials()
    yield client
    client.cookies.clear()
    client.credentials()


@pytest.fixture
def world(settings, tmp_path, monkeypatch, rest_client) -> SimpleNamespace:
    """The owners, one dataset / job / candidate / active version per kind, and a shared embedder."""
    isolate(settings, tmp_path, monkeypatch)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: ~600 callers
    # No model serves any role: what reaches the registry fails fast instead of loading one.
    from ml.registry import ModelUnavailable, Registry

    def no_model(registry: Registry, role: str) -> Any:
        raise ModelUnavailable(f"no model serves {role} in the access matrix")

    monkeypatch.setattr(Registry, "active", no_model)
    monkeypatch.setattr("apps.mlops.tasks.model_version_evaluate_task.delay",
                        lambda *args: SimpleNamespace(id="evaluation-queued-in-test"))
    owners = {role: UserFactory(roles=[role], username=f"{role}-owner") for role in OWNER.values()}
    ids = Ids(owners, rest_client)
    for kind in KINDS:
        owner = owners[OWNER[kind]]
        dataset = DatasetFactory(role=kind, name=f"{kind}-marker-dataset", created_by=owner)
        ids[f"{kind}_dataset"] = dataset.pk
        ids[f"{kind}_job"] = TrainingJobFactory(dataset=dataset, created_by=owner).pk
        ids[f"{kind}_candidate"] = ModelVersionFactory(
            role=kind, version=f"{kind}-marker-candidate", created_by=owner).pk
        ids[f"{kind}_active"] = ModelVersionFactory(
            role=kind, version=f"{kind}-marker-active", status=ModelVersion.Status.ACTIVE, created_by=owner).pk
    ids["embedder_candidate"] = ModelVersionFactory(role="embedder", version="embedder-shared", kind="embedder").pk
    recommend_isolate(settings, tmp_path)
    ids.update(access_matrix_objects())
    ids.update(sentiment_access_objects())
    ids.update(alert_access_objects())
    ids.update(kb_access_objects(settings, tmp_path))
    ids.update(console_access_objects())
    ids.update(widget_access_objects())
    return SimpleNamespace(owners=owners, ids=ids)


def _caller(world: SimpleNamespace, who: str) -> Any:
    if who == ANON:
        return None
    if who == NOROLE:
        return UserFactory(username="no-role")
    if who in world.owners:
        return world.owners[who]
    return UserFactory(roles=[ROLE_OF[who]], username=who.replace("_", "-"))


def _signed_in_api_client(api_client: Any, user: Any) -> Any:
    if user is not None:
        # Through the public token endpoint, so the test holds whatever kind of token it issues.
        response = api_client.post("/api/auth/token/", {"username": user.username, "password": PASSWORD})
        assert response.status_code == 200, response.content
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return api_client


# --- HTTP


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {'api ' if c.api else ''}{c.name}" for c in CASES])
def test_http(case: Case, who: str, world, page_client, rest_client):
    user = _caller(world, who)
    if case.api:
        http = _signed_in_api_client(rest_client, user)
    else:
        http = page_client
        if user is not None:
            http.force_login(user)
    ids = world.ids
    ids.caller = getattr(user, "username", None)
    for name in case.needs:
        ids[name]
    path = case.path.format_map(ids)
    data = case.data(ids) if case.data else None
    if case.method == "GET":
        response = http.get(path)
    elif case.api:
        send = getattr(http, case.method.lower())
        response = send(path, data, format="multipart" if data and "file" in data else "json")
    else:
        response = http.post(path, data or {})

    expected = case.expect(who)
    if expected in (LOGIN, ADMIN_LOGIN):
        assert response.status_code == 302, response.content[:300]
        login = "/admin/login/" if expected == ADMIN_LOGIN else "/accounts/login/"
        assert response["Location"].startswith(login)
        return
    assert response.status_code == expected, response.content[:500]
    if case.api and expected >= 400 and response.get("Content-Type", "").startswith("application/json"):
        # /v1 answers in OpenAI's error shape, everything else in Trellis's.
        shape = {"message", "type", "param", "code"} if path.startswith("/v1/") else {"code", "message", "details"}
        assert set(response.json()["error"]) == shape
    if expected == 200:
        body = response.content.decode("utf-8", "replace")
        for marker in _hidden_markers(who):
            assert marker not in body, f"{who} was shown {marker} objects"
        if case.check is not None:
            case.check(response, who, ids)


# --- WebSockets (session cookie of the signed-in caller)


@dataclass(frozen=True)
class SocketCase:
    name: str
    route: str  # the pattern in config/routing.py
    path: str
    expect: Expect  # who -> "open", or the close code


JOB_ROUTE = "ws/mlops/jobs/<int:job_id>/"


def socket_rule(visible: Callable[[str], bool]) -> Expect:
    return lambda who: 4401 if who == ANON else 4403 if who == NOROLE else "open" if visible(ROLE_OF[who]) else 4404


SOCKET_CASES = [
    SocketCase("ping", "ws/ping/", "/ws/ping/", lambda who: 4401 if who == ANON else "open"),
    # No role at all: 4403 whatever the id. A job of an invisible model role closes with 4404,
    # like an unknown one (the API's 404 for both), so job ids cannot be probed.
    *[SocketCase(f"job {k}", JOB_ROUTE, f"/ws/mlops/jobs/{{{k}_job}}/", socket_rule(lambda role, k=k: role in SEES[k]))
      for k in KINDS],
    SocketCase("unknown job", JOB_ROUTE, "/ws/mlops/jobs/999999/", socket_rule(lambda role: False)),
    # Analysts' live alerts and scored documents: other roles are refused whatever they hold.
    SocketCase("sentiment live", "ws/sentiment/live/", "/ws/sentiment/live/",
               lambda who: 4401 if who == ANON else "open" if ROLE_OF.get(who) in ANALYSTS else 4403),
    # Agents' queue: agents and admins only.
    SocketCase("chat queue", "ws/chat/queue/", "/ws/chat/queue/",
               lambda who: 4401 if who == ANON else "open" if ROLE_OF.get(who) in AGENTS else 4403),
    # A conversation: agents and admins at once; anyone else is a visitor who must show the
    # conversation's token in a first "hello" frame (none here: closed with 4401).
    SocketCase("chat conversation", "ws/chat/<uuid:public_id>/", "/ws/chat/{chat_waiting}/",
               lambda who: "open" if ROLE_OF.get(who) in AGENTS else "hello"),
]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("case", SOCKET_CASES, ids=[c.name for c in SOCKET_CASES])
def test_socket(case: SocketCase, who: str, world, page_client):
    from channels.testing import WebsocketCommunicator
    from django.conf import settings

    from config.asgi import application

    user = _caller(world, who)
    headers = list(ORIGIN)
    if user is not None:
        page_client.force_login(user)
        session = page_client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()))
    expected = case.expect(who)

    async def scenario() -> None:
        comm = WebsocketCommunicator(application, case.path.format(**world.ids), headers=headers)
        connected, code = await comm.connect(timeout=TIMEOUT)
        if expected not in ("open", "hello"):
            assert (connected, code) == (False, expected)
            return
        assert connected
        if expected == "hello":  # accepted, waiting for the visitor's token
            await comm.send_json_to({"type": "hello"})
            closed = await comm.receive_output(timeout=TIMEOUT)
            assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
            return
        first = await comm.receive_json_from(timeout=TIMEOUT)
        if case.name == "ping":
            assert first["type"] == "hello" and first["user"] == user.username
        elif case.name == "sentiment live":
            assert first == {"type": "hello", "open_alerts": 1}
        elif case.name == "chat queue":
            assert first["type"] == "queue"
        elif case.name == "chat conversation":
            assert first["type"] == "history" and first["conversation"]["public_id"] == world.ids["chat_waiting"]
        else:
            assert first["type"] == "job" and first["job"]["id"] == world.ids[f"{case.name.split()[1]}_job"]
        await comm.send_json_to({"type": "ping"})
        pong = await comm.receive_json_from(timeout=TIMEOUT)
        assert pong["type"] == "pong"
        for marker in _hidden_markers(who):
            assert marker not in str(first)
        await comm.disconnect()

    run(scenario)


# --- completeness


def _routes(patterns: list[Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route == "admin/":  # Django's admin site: its index stands for the whole site
                out.add(route)
                continue
            out |= _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            out.add(route)
    return out


def test_every_route_is_in_the_matrix():
    from config.routing import websocket_urlpatterns

    ids = dict.fromkeys(["intent_dataset", "intent_job", "intent_candidate", "intent_active",
                         "sentiment_dataset", "sentiment_job", "sentiment_candidate", "sentiment_active",
                         "embedder_candidate", "agent_token", "rec_import", "rec_abtest", "rec_evaluation",
                         "rec_widget_key", "sent_push", "sent_feed", "sent_doc", "sent_watchlist", "sent_rule",
                         "sent_doomed_rule", "sent_alert", "sent_backtest", "sent_delivery",
                         "kb_article", "kb_doomed", "kb_import"], 1)
    ids.update(CONSOLE_ROUTE_IDS)
    ids.update(WIDGET_ROUTE_IDS)
    covered = {resolve(case.path.format_map(ids)).route for case in CASES} | AUTH_ROUTES
    assert _routes(get_resolver().url_patterns) - covered == set(), "add these routes to the access matrix"

    socket_routes = {str(p.pattern) for p in websocket_urlpatterns}
    assert socket_routes - {c.route for c in SOCKET_CASES} == set(), "add these sockets to the access matrix"
