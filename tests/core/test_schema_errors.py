"""apps/core/schema.py: the framework's error responses appear in the schema of every operation."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def paths() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)["paths"]


def _ref(operation: dict, code: str) -> str:
    return operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]


def test_signed_in_operation_documents_401_and_429_in_the_error_shape(paths):
    me = paths["/api/auth/me/"]["get"]

    assert _ref(me, "401") == ERROR_REF
    assert _ref(me, "429") == ERROR_REF  # the default user/anon throttles apply
    assert "400" not in me["responses"]  # nothing to validate: no body, no query
    assert "403" not in me["responses"]  # signed in is all it asks, and a GET has no CSRF check


def test_login_documents_invalid_input_and_lockout_but_no_401(paths):
    login = paths["/api/auth/token/"]["post"]

    assert {"200", "400", "413", "415", "429"} <= set(login["responses"])
    assert "401" not in login["responses"]  # it reads no credentials, so none can be wrong


def test_an_operation_on_one_object_documents_404(paths):
    assert "404" in paths["/api/mlops/jobs/{id}/"]["get"]["responses"]
    assert "404" not in paths["/api/mlops/jobs/"]["get"]["responses"]


def test_added_errors_take_the_body_of_the_views_own_401(paths):
    # mlops documents its own errors; what is added reuses that component, not a second shape.
    jobs = paths["/api/mlops/jobs/"]["post"]

    assert _ref(jobs, "429") == _ref(jobs, "401") == "#/components/schemas/MlopsError"
    assert jobs["responses"]["413"]["description"].startswith("The request body is over")


def test_the_error_component_is_the_one_error_shape():
    from apps.core.errors import error_body
    from apps.core.schema import ErrorSerializer

    body = error_body("not_found", "Not found.")

    assert ErrorSerializer(data=body).is_valid(), body
    assert set(ErrorSerializer().fields["error"].fields) == set(body["error"])
