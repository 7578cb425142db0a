"""OpenAPI: the schema view works and generation is free of warnings; schema and docs are for
signed-in users unless TRELLIS_PUBLIC_API_DOCS."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, make_user):
    client.force_login(make_user("analyst"))
    return client


def test_schema_view_serves_the_api(signed_in):
    response = signed_in.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["info"]["title"] == "Trellis API"
    for path in ("/api/auth/token/", "/api/auth/token/rotate/", "/api/auth/me/"):
        assert path in schema["paths"]


def test_docs_page_renders(signed_in):
    response = signed_in.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<script src="/api/docs/?script="></script>' in html  # its start-up script is a file
    assert "<style" not in html and "<script>" not in html  # nothing inline for the CSP to refuse


def test_docs_start_up_script_points_at_the_schema(signed_in):
    response = signed_in.get("/api/docs/?script=")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in response.content.decode()


def test_anonymous_schema_is_401_in_the_error_shape(client):
    response = client.get("/api/schema/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_anonymous_docs_page_redirects_to_login(client):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/api/docs/"


def test_an_api_token_opens_the_schema(api_client, make_user):
    make_user("merchandiser", username="merch")
    token = api_client.post("/api/auth/token/", {"username": "merch", "password": "pw-for-tests-123"}).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    response = api_client.get("/api/schema/")

    assert response.status_code == 200
    assert "/api/auth/me/" in yaml.safe_load(response.content)["paths"]


@override_settings(TRELLIS_PUBLIC_API_DOCS=True)
def test_public_api_docs_setting_opens_both_to_anonymous(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_docs_page_runs_under_the_site_policy(signed_in):
    from csp.constants import HEADER

    docs = signed_in.get("/api/docs/")
    home = signed_in.get("/")

    # No exemption: Swagger UI's files are served by this site (drf-spectacular-sidecar).
    assert docs[HEADER] == home[HEADER]
    assert "unsafe-inline" not in docs[HEADER] and "unsafe-eval" not in docs[HEADER]
    assert 'src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"' in docs.content.decode()


def test_spectacular_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    # Raises SchemaGenerationError on any warning or error (they are printed to stderr).
    call_command("spectacular", fail_on_warn=True, validate=True, file=str(target))

    assert "/api/auth/me/" in yaml.safe_load(target.read_text())["paths"]
