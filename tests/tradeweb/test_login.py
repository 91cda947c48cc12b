"""Failed logins are throttled per username and per client address (django-axes), and the user is told."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

URL = reverse("login")
LIMIT = settings.AXES_FAILURE_LIMIT


def attempt(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_logs_in(client, make_user):
    make_user("alice", password="the-right-password")

    response = attempt(client, "alice", "the-right-password")

    assert response.status_code == 302
    assert logged_in(client)


def test_thirty_wrong_passwords_lock_the_username_so_the_right_one_is_refused(client, make_user):
    make_user("alice", password="the-right-password")
    for _ in range(30):
        attempt(client, "alice", "guess")

    response = attempt(client, "alice", "the-right-password")

    assert response.status_code == 429
    assert not logged_in(client)
    html = response.content.decode()
    assert "Too many failed logins" in html
    assert f"after {LIMIT} failed logins" in html


def test_the_lock_starts_exactly_at_the_failure_limit(client, make_user):
    make_user("alice", password="the-right-password")
    for _ in range(LIMIT - 1):
        assert attempt(client, "alice", "guess").status_code == 200

    assert attempt(client, "alice", "guess").status_code == 429
    assert attempt(client, "alice", "the-right-password").status_code == 429


def test_a_username_locked_from_one_address_is_locked_from_every_address(client, make_user):
    make_user("alice", password="the-right-password")
    for _ in range(LIMIT):
        attempt(client, "alice", "guess", address="10.0.0.1")

    response = attempt(client, "alice", "the-right-password", address="10.9.9.9")

    assert response.status_code == 429
    assert not logged_in(client)


def test_an_address_that_guesses_many_usernames_is_locked_for_all_of_them(client, make_user):
    make_user("bob", password="bobs-right-password")
    for number in range(LIMIT):
        attempt(client, f"user{number}", "guess", address="10.0.0.66")

    response = attempt(client, "bob", "bobs-right-password", address="10.0.0.66")

    assert response.status_code == 429
    assert not logged_in(client)


def test_other_users_at_other_addresses_still_log_in(client, make_user):
    make_user("alice", password="the-right-password")
    make_user("bob", password="bobs-right-password")
    for _ in range(LIMIT):
        attempt(client, "alice", "guess", address="10.0.0.1")

    response = attempt(client, "bob", "bobs-right-password", address="10.0.0.2")

    assert response.status_code == 302
    assert logged_in(client)


def test_a_success_before_the_limit_starts_the_count_again(client, make_user):
    make_user("alice", password="the-right-password")
    for _ in range(LIMIT - 1):
        attempt(client, "alice", "guess")
    assert attempt(client, "alice", "the-right-password").status_code == 302
    client.logout()

    for _ in range(LIMIT - 1):
        attempt(client, "alice", "guess")

    assert attempt(client, "alice", "the-right-password").status_code == 302


def test_a_lockout_is_logged_with_the_username_and_address(client, make_user, caplog):
    make_user("alice", password="the-right-password")

    with caplog.at_level(logging.WARNING, logger="axes"):
        for _ in range(LIMIT):
            attempt(client, "alice", "guess", address="10.0.0.77")

    lockouts = [r.getMessage() for r in caplog.records if "Locking out" in r.getMessage()]
    assert lockouts, [r.getMessage() for r in caplog.records]
    assert "alice" in lockouts[0] and "10.0.0.77" in lockouts[0]
    assert "guess" not in " ".join(r.getMessage() for r in caplog.records)
