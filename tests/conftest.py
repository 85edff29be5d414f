import pytest
from django.db import connection

from incidents.store import DjangoStateStore


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://…")


@pytest.fixture
def store() -> DjangoStateStore:
    return DjangoStateStore()
