"""Permission checks in one query: the control views ask for a user's permissions on every click."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q


class PermissionsInOneQuery(ModelBackend):
    """Django's ModelBackend, with a user's own and group permissions read in one query instead of two."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            granted = Permission.objects.all() if user_obj.is_superuser else Permission.objects.filter(
                Q(user=user_obj) | Q(group__user=user_obj)
            )
            pairs = granted.values_list("content_type__app_label", "codename").order_by()
            user_obj._perm_cache = {f"{app}.{codename}" for app, codename in pairs}
        return user_obj._perm_cache
