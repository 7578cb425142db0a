"""OpenAPI: the schema view works and generation is free of warnings."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_view_serves_the_api(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["info"]["title"] == "Trellis API"
    for path in ("/api/auth/token/", "/api/auth/token/rotate/", "/api/auth/me/"):
        assert path in schema["paths"]


def test_docs_page_renders(client):
    assert client.get("/api/docs/").status_code == 200


def test_spectacular_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    # Raises SchemaGenerationError on any warning or error (they are printed to stderr).
    call_command("spectacular", fail_on_warn=True, validate=True, file=str(target))

    assert "/api/auth/me/" in yaml.safe_load(target.read_text())["paths"]
