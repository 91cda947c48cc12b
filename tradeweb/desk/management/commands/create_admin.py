"""Create the administrator of a production desk once, from the environment; safe to run again."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

GENERATED_PASSWORD_BYTES = 24  # 32 URL-safe characters, 192 random bits


class Command(BaseCommand):
    help = (
        "Create the superuser ADMIN_USERNAME (default admin) with the password ADMIN_PASSWORD; "
        "without ADMIN_PASSWORD a strong password is generated and printed this once. "
        "An existing user is left exactly as it is."
    )

    def handle(self, *args, **options) -> None:
        username = os.environ.get("ADMIN_USERNAME") or "admin"
        given_password = os.environ.get("ADMIN_PASSWORD") or ""
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Admin user {username!r} already exists; nothing changed (its password was not touched).")
            return
        if given_password:
            check_given_password(given_password, username)
        password = given_password or secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        users.create_superuser(username=username, email="", password=password)
        if given_password:
            self.stdout.write(self.style.SUCCESS(f"Created admin user {username!r} with the password from ADMIN_PASSWORD."))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"Created admin user {username!r} with a generated password, shown only this once: {password}\n"
                "Store it now, or change it in the admin after logging in."
            ))


def check_given_password(password: str, username: str) -> None:
    """Apply the project's password validators to ADMIN_PASSWORD, naming the problems but never the password."""
    try:
        validate_password(password, user=get_user_model()(username=username))
    except ValidationError as error:
        raise CommandError(f"ADMIN_PASSWORD is not accepted: {' '.join(error.messages)}") from error
