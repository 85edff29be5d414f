"""schemathesis against the API's own OpenAPI schema, with a token: no server error, and every
response (status, content type, body) matches the schema. Bounded: a few examples per operation.
"""

import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from incidents.api.throttling import TokenRateThrottle
from incidents.api.tokens import issue_token
from tests.builders import make_incident, make_report

# The schema /api/schema/ serves, generated here (collection happens before any database).
SCHEMA_DOCUMENT = json.loads(json.dumps(SchemaGenerator().get_schema(public=True), default=str))
schema = schemathesis.openapi.from_dict(SCHEMA_DOCUMENT)
schema.app = WSGIHandler()

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Requests go through a plain WSGIHandler, whose request signals would close the test's
    database connection mid-transaction (PostgreSQL); Django's own test client unhooks them
    the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_token(django_user_model, grant, monkeypatch, settings) -> str:
    settings.ALLOWED_HOSTS = ["localhost"]  # schemathesis' WSGI client's host
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"api_token": "100000/minute"})
    user = django_user_model.objects.create_user("schemathesis")
    user = grant(
        user,
        "view_incident",
        "view_triagereport",
        "add_faultevent",
        "respond_incident",
        "view_silence",
    )
    incident = make_incident(status="resolved")
    make_report(incident)
    return issue_token(user).secret


def test_the_served_schema_is_the_one_tested(client, api_token):
    response = client.get(
        "/api/schema/?format=json", HTTP_AUTHORIZATION=f"Bearer {api_token}", HTTP_HOST="localhost"
    )
    assert response.status_code == 200
    assert json.loads(response.content)["paths"].keys() == SCHEMA_DOCUMENT["paths"].keys()


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_matches_its_schema(case, api_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_token}"}, checks=CHECKS)
