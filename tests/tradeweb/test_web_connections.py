"""The web process reuses its database connections. Daphne serves each request in a thread of its own, so a
connection kept per thread is never used twice: without a pool every request opened a new PostgreSQL
connection (a new server process), several milliseconds of every click."""

from __future__ import annotations

import pytest
import requests
from django.db import connection
from django.test import Client

from tests.conftest import service_missing

pytestmark = pytest.mark.django_db(transaction=True)
NO_PROXY = {"http": "", "https": ""}


def connections_opened() -> int:
    """How many connections PostgreSQL has let into this database so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_requests_to_the_web_process_take_pooled_connections_instead_of_opening_new_ones(daphne_url, make_user):
    if connection.vendor != "postgresql":
        service_missing("the web process pools PostgreSQL connections: set DATABASE_URL to run this")
    client = Client()
    client.force_login(make_user("watcher"))
    cookies = {"sessionid": client.cookies["sessionid"].value}

    def dashboard() -> int:
        return requests.get(daphne_url + "/", cookies=cookies, proxies=NO_PROXY, timeout=10).status_code

    assert dashboard() == 200  # the pool opens here
    before = connections_opened()

    answers = [dashboard() for _ in range(20)]

    assert answers == [200] * 20
    assert connections_opened() - before <= 1, "20 requests, each of which reads the session and the user"
