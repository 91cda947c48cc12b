"""Every page carries a Content-Security-Policy that forbids inline script."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("name, kwargs", [
    ("dashboard", {}),
    ("strategy_detail", {"strategy_id": "alpha"}),
    ("strategy_card", {"strategy_id": "alpha"}),
    ("event_list", {}),
    ("admin:index", {}),
    ("admin:desk_strategy_changelist", {}),
])
def test_every_page_forbids_inline_script(client, make_strategy, make_user, name, kwargs):
    make_strategy("alpha")
    client.force_login(make_user("staff-viewer"))
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="staff-viewer").update(is_staff=True, is_superuser=True)

    response = client.get(reverse(name, kwargs=kwargs))

    assert response.status_code == 200
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]


def test_the_login_page_and_an_unknown_page_carry_the_policy_too(client):
    for response in (client.get(reverse("login")), client.get("/no-such-page/")):
        assert directives(response)["script-src"] == ["'self'"]


def test_pages_hold_no_inline_script(client, make_strategy, make_user):
    make_strategy("alpha")
    client.force_login(make_user())

    for url in (reverse("dashboard"), reverse("strategy_detail", kwargs={"strategy_id": "alpha"}), reverse("login")):
        html = client.get(url).content.decode()
        # Only external scripts and JSON data blocks, which the browser does not execute.
        for tag in html.split("<script")[1:]:
            head = tag.split(">", 1)[0]
            assert " src=" in head or 'type="application/json"' in head, head
