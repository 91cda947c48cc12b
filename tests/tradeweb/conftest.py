"""Factories for the desk's models: real rows, built the way the admin and seed command build them."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Callable

import pytest
from django.contrib.auth.models import Permission

from orchestrator.config import config_to_json
from strategies import parse_strategy_config


@pytest.fixture
def make_strategy(db) -> Callable:
    """Create a strategy row with a validated config."""
    from tradeweb.desk.models import Strategy

    def make(strategy_id: str = "alpha", strategy_class: str = "sma_crossover", symbol: str = "BTC/USD",
             timeframe: str = "1m", status: str = "active", capital: str = "10000", **config) -> Strategy:
        config = config or ({"fast_period": 5, "slow_period": 20} if strategy_class == "sma_crossover" else {})
        return Strategy.objects.create(
            strategy_id=strategy_id, name=strategy_id.replace("-", " ").title(), strategy_class=strategy_class,
            symbol=symbol, timeframe=timeframe, status=status, capital=Decimal(capital),
            config=config_to_json(parse_strategy_config(strategy_class, config)),
        )

    return make


@pytest.fixture
def make_user(db, django_user_model) -> Callable:
    """Create a user, optionally with the permission to switch strategies."""

    def make(username: str = "trader", can_control: bool = False, password: str = "pw-for-tests-only"):
        user = django_user_model.objects.create_user(username=username, password=password)
        if can_control:
            user.user_permissions.add(Permission.objects.get(codename="control_strategy", content_type__app_label="desk"))
        return user

    return make


@pytest.fixture
def btc_candles() -> list:
    """The first real BTC/USD one-minute candles shipped in data/."""
    from orchestrator.datasets import load_candles

    return load_candles("BTC/USD", limit=400)


@pytest.fixture
def wait_for_worker(celery_worker) -> Callable:
    """Wait until a condition on the database holds after tasks were sent; fail with the worker's log."""

    def wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                tail = celery_worker.log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tail}")
            time.sleep(0.1)

    return wait


@pytest.fixture
def fresh_worker():
    """The test runs as a freshly started worker process: no cached orchestrators, before or after."""
    from tradeweb.desk import orchestrators

    orchestrators.forget_all()
    yield
    orchestrators.forget_all()
