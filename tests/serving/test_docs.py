"""The inference API in the OpenAPI schema; Swagger UI and ReDoc from installed files; the favicon."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

INFERENCE_PATHS = {
    "/v1/embeddings": "post",
    "/v1/chat/completions": "post",
    "/api/ml/classify/": "post",
    "/api/ml/entities/": "post",
}


def test_the_schema_documents_the_inference_api_with_bodies(client_for):
    schema = yaml.safe_load(client_for("agent").get("/api/schema/").content)
    paths = schema["paths"]

    for path, method in INFERENCE_PATHS.items():
        operation = paths[path][method]
        assert "application/json" in operation["requestBody"]["content"], path
        assert "application/json" in operation["responses"]["200"]["content"], path
    assert "text/event-stream" in paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert {"/v1/models", "/v1/models/{model_id}", "/api/ml/stats/"} <= set(paths)
    assert paths["/v1/embeddings"]["post"]["responses"]["404"]["content"]["application/json"]["schema"]["$ref"] \
        == "#/components/schemas/OpenAIError"


@pytest.mark.parametrize(("url", "sidecar_file"), [
    ("/api/docs/", "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"),
    ("/api/redoc/", "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
])
def test_doc_pages_load_their_files_from_this_site(client, make_user, url, sidecar_file):
    client.force_login(make_user("agent"))

    page = client.get(url).content.decode()

    assert f"/static/{sidecar_file}" in page
    assert finders.find(sidecar_file), "drf-spectacular-sidecar is not installed"
    assert "https://" not in page  # no CDN, no web fonts
    assert "<style>" not in page


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_doc_pages_send_anonymous_visitors_to_the_login_page(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_favicon_is_served_and_linked_from_the_base_template(client):
    response = client.get("/favicon.ico")
    login_page = client.get("/accounts/login/").content.decode()

    assert response.status_code == 302
    assert response["Location"] == "/static/core/favicon.svg"
    assert finders.find("core/favicon.svg")
    assert '<link rel="icon" href="/static/core/favicon.svg" type="image/svg+xml">' in login_page
