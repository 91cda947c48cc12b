"""Create the demo login and two demo strategies for `make run`; safe to run again."""

from __future__ import annotations

import os
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError

from orchestrator.config import config_to_json
from strategies import parse_strategy_config
from tradeweb.desk import models

DEMO_STRATEGIES = [
    {
        "strategy_id": "btc-sma-cross",
        "name": "BTC SMA crossover",
        "strategy_class": "sma_crossover",
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "capital": Decimal("10000"),
        "config": {"fast_period": 10, "slow_period": 30, "stop_loss_pct": "0.01", "take_profit_pct": "0.02"},
    },
    {
        "strategy_id": "gbp-rsi-revert",
        "name": "GBP/USD RSI mean reversion",
        "strategy_class": "rsi_mean_reversion",
        "symbol": "GBP/USD",
        "timeframe": "1m",
        "capital": Decimal("10000"),
        "config": {"rsi_period": 14, "oversold": 30, "exit_level": 55, "stop_loss_pct": "0.002", "take_profit_pct": "0.003"},
    },
]

DEMO_LOGIN_NEEDS_DEBUG = (
    "seed_demo creates a superuser with a published demo password, so it runs only with DEBUG on "
    "(as `make run` has it). With DEBUG off create the administrator with `manage.py create_admin`; "
    "`manage.py seed_demo --strategies-only` still adds the two demo strategies."
)


# The demo account halts past a 20% drawdown or a 10% loss in a UTC day, all strategies together.
DEMO_ACCOUNT_LIMITS = {"max_drawdown_pct": Decimal("0.2"), "daily_loss_pct": Decimal("0.1")}


class Command(BaseCommand):
    help = (
        "Create the demo user (with the control permission) and two active demo strategies. "
        "The demo user is refused with DEBUG off; --strategies-only creates just the strategies."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--strategies-only", action="store_true",
            help="create only the two demo strategies, no login (allowed with DEBUG off)",
        )

    def handle(self, *args, strategies_only: bool = False, **options) -> None:
        if not strategies_only and not settings.DEBUG:
            raise CommandError(DEMO_LOGIN_NEEDS_DEBUG)
        self.create_demo_strategies()
        if not strategies_only:
            self.create_demo_login()

    def create_demo_login(self) -> None:
        """The demo superuser with the control permission; its password is set only when it is created."""
        username = os.environ.get("DEMO_USERNAME", "demo")
        password = os.environ.get("DEMO_PASSWORD", "demo-password")
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(password)
            user.save()
        user.user_permissions.add(Permission.objects.get(codename="control_strategy", content_type__app_label="desk"))
        note = password if created else "(unchanged; set when the user was first created)"
        self.stdout.write(self.style.SUCCESS(f"Demo login: {username} / {note}"))

    def create_demo_strategies(self) -> None:
        """The two active demo strategies, each left as it is when it already exists, and loss limits across
        their account."""
        for spec in DEMO_STRATEGIES:
            spec = dict(spec)
            spec["config"] = config_to_json(parse_strategy_config(spec["strategy_class"], spec["config"]))
            strategy_id = spec.pop("strategy_id")
            _, made = models.Strategy.objects.get_or_create(
                strategy_id=strategy_id, defaults={**spec, "status": models.Strategy.Status.ACTIVE}
            )
            self.stdout.write(f"strategy {strategy_id}: {'created' if made else 'already there'}")
        models.AccountLimit.objects.get_or_create(account="paper", defaults=DEMO_ACCOUNT_LIMITS)
