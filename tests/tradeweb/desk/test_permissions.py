"""A user's permissions in one query, and the same ones Django's ModelBackend finds."""

from __future__ import annotations

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User

from tradeweb.desk.permissions import PermissionsInOneQuery

pytestmark = pytest.mark.django_db


def permission(codename: str) -> Permission:
    return Permission.objects.get(codename=codename)


@pytest.fixture
def users() -> dict[str, User]:
    traders = Group.objects.create(name="traders")
    traders.permissions.add(permission("control_strategy"), permission("view_strategy"))
    direct = User.objects.create_user("direct")
    direct.user_permissions.add(permission("view_event"))
    both = User.objects.create_user("both")
    both.user_permissions.add(permission("view_event"), permission("control_strategy"))
    both.groups.add(traders)
    grouped = User.objects.create_user("grouped")
    grouped.groups.add(traders)
    inactive = User.objects.create_user("inactive", is_active=False)
    inactive.groups.add(traders)
    return {
        "none": User.objects.create_user("none"), "direct": direct, "both": both, "grouped": grouped,
        "inactive": inactive, "superuser": User.objects.create_superuser("superuser"),
    }


@pytest.mark.parametrize("name", ["none", "direct", "both", "grouped", "inactive", "superuser"])
def test_the_permissions_are_django_s_own(users, name):
    found = PermissionsInOneQuery().get_all_permissions(User.objects.get(username=name))

    assert found == ModelBackend().get_all_permissions(User.objects.get(username=name))
    if name in {"both", "grouped"}:
        assert "desk.control_strategy" in found


def test_one_query_then_none(users, django_assert_num_queries):
    backend, user = PermissionsInOneQuery(), User.objects.get(username="both")

    with django_assert_num_queries(1):
        assert backend.has_perm(user, "desk.control_strategy")
        assert backend.has_perm(user, "desk.view_event")
        assert not backend.has_perm(user, "desk.delete_strategy")
