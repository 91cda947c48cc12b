"""Management commands: the demo seed, the production admin, and the replay feed into a real Celery worker."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.test import Client, override_settings

from tradeweb.desk import models


def seed(**kwargs) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **kwargs)
    return out.getvalue()


def can_log_in(username: str, password: str) -> bool:
    """Whether the login form's backends accept these credentials (django-axes needs a request)."""
    return Client().login(request=HttpRequest(), username=username, password=password)


@pytest.fixture
def debug_on(settings):
    """DEBUG on, as `make run` has it: the only place the demo login may be created."""
    settings.DEBUG = True


@pytest.fixture
def default_demo_login(monkeypatch):
    monkeypatch.delenv("DEMO_USERNAME", raising=False)
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


@pytest.mark.django_db
def test_seed_demo_creates_a_demo_user_who_can_log_in_and_control(default_demo_login, debug_on):
    output = seed()

    login = re.search(r"Demo login: (\S+) / (\S+)", output)
    assert login, output
    username, password = login.groups()
    user = get_user_model().objects.get(username=username)
    assert user.user_permissions.filter(codename="control_strategy", content_type__app_label="desk").exists()
    assert user.has_perm("desk.control_strategy")
    assert can_log_in(username, password)


@pytest.mark.django_db
def test_seed_demo_takes_the_login_from_the_environment(monkeypatch, debug_on):
    monkeypatch.setenv("DEMO_USERNAME", "desk-lead")
    monkeypatch.setenv("DEMO_PASSWORD", "a-long-demo-secret")

    output = seed()

    assert "Demo login: desk-lead / a-long-demo-secret" in output
    assert can_log_in("desk-lead", "a-long-demo-secret")


@pytest.mark.django_db
def test_seed_demo_creates_two_active_strategies_with_valid_configs(default_demo_login, debug_on):
    seed()

    strategies = {s.strategy_id: s for s in models.Strategy.objects.all()}
    assert set(strategies) == {"btc-sma-cross", "gbp-rsi-revert"}
    assert {s.status for s in strategies.values()} == {"active"}
    assert (strategies["btc-sma-cross"].symbol, strategies["gbp-rsi-revert"].symbol) == ("BTC/USD", "GBP/USD")
    for strategy in strategies.values():
        before = dict(strategy.config)
        strategy.full_clean()  # what the admin checks before saving
        assert strategy.config == before, "the seed stores configs already normalised"
    limits = models.AccountLimit.objects.get(account="paper")
    limits.full_clean()
    assert {s.account for s in strategies.values()} == {"paper"} and limits.max_drawdown_pct and limits.daily_loss_pct


@pytest.mark.django_db
def test_seed_demo_run_twice_creates_nothing_more_and_keeps_the_password(default_demo_login, debug_on):
    seed()
    user = get_user_model().objects.get(username="demo")
    user.set_password("changed-by-the-user")
    user.save()
    models.Strategy.objects.filter(strategy_id="btc-sma-cross").update(status="dormant")
    strategies_before = list(models.Strategy.objects.values())

    output = seed()

    assert get_user_model().objects.count() == 1
    assert list(models.Strategy.objects.values()) == strategies_before
    assert output.count("already there") == 2
    assert "unchanged" in output
    assert can_log_in("demo", "changed-by-the-user")


@pytest.mark.django_db
def test_seed_demo_refuses_to_create_the_demo_login_when_debug_is_off(default_demo_login):
    with override_settings(DEBUG=False), pytest.raises(CommandError, match="runs only with DEBUG on"):
        seed()

    assert not get_user_model().objects.exists()
    assert not models.Strategy.objects.exists(), "a refused seed creates nothing"


@pytest.mark.django_db
def test_seed_demo_strategies_only_creates_the_strategies_and_no_login_when_debug_is_off(default_demo_login):
    with override_settings(DEBUG=False):
        output = seed(strategies_only=True)

    assert set(models.Strategy.objects.values_list("strategy_id", flat=True)) == {"btc-sma-cross", "gbp-rsi-revert"}
    assert not get_user_model().objects.exists()
    assert "Demo login" not in output


def create_admin() -> str:
    """Run create_admin; everything it wrote, stdout and stderr together."""
    out, err = StringIO(), StringIO()
    call_command("create_admin", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def no_admin_settings(monkeypatch):
    monkeypatch.delenv("ADMIN_USERNAME", raising=False)
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)


@pytest.mark.django_db
def test_create_admin_without_a_password_prints_a_generated_one_once_and_it_logs_in(no_admin_settings):
    first = create_admin()

    shown = re.search(r"Created admin user 'admin' with a generated password, shown only this once: (\S+)", first)
    assert shown, first
    password = shown.group(1)
    assert len(password) >= 32
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.has_perm("desk.control_strategy")
    assert can_log_in("admin", password)

    second = create_admin()

    assert password not in second
    assert "already exists; nothing changed" in second
    assert can_log_in("admin", password)


@pytest.mark.django_db
def test_create_admin_generates_a_new_random_password_for_each_new_admin(no_admin_settings):
    first = re.search(r"shown only this once: (\S+)", create_admin()).group(1)
    get_user_model().objects.all().delete()

    second = re.search(r"shown only this once: (\S+)", create_admin()).group(1)

    assert first != second


@pytest.mark.django_db
def test_create_admin_uses_the_given_name_and_password_and_never_prints_the_password(monkeypatch):
    monkeypatch.setenv("ADMIN_USERNAME", "desk-admin")
    monkeypatch.setenv("ADMIN_PASSWORD", "given-Pa55word-from-a-vault")

    output = create_admin()

    assert "given-Pa55word-from-a-vault" not in output
    assert "Created admin user 'desk-admin' with the password from ADMIN_PASSWORD" in output
    assert get_user_model().objects.get(username="desk-admin").is_superuser
    assert can_log_in("desk-admin", "given-Pa55word-from-a-vault")


@pytest.mark.django_db
def test_create_admin_leaves_an_existing_user_untouched(monkeypatch, make_user):
    existing = make_user("admin", password="the-password-they-chose")
    monkeypatch.delenv("ADMIN_USERNAME", raising=False)
    monkeypatch.setenv("ADMIN_PASSWORD", "a-new-password-that-must-not-apply")

    output = create_admin()

    assert "Admin user 'admin' already exists; nothing changed" in output
    assert "a-new-password-that-must-not-apply" not in output
    existing.refresh_from_db()
    assert (existing.is_superuser, existing.is_staff) == (False, False)
    assert get_user_model().objects.count() == 1
    assert can_log_in("admin", "the-password-they-chose")
    assert not can_log_in("admin", "a-new-password-that-must-not-apply")


@pytest.mark.django_db
def test_create_admin_refuses_a_weak_given_password_without_printing_it(monkeypatch):
    monkeypatch.delenv("ADMIN_USERNAME", raising=False)
    monkeypatch.setenv("ADMIN_PASSWORD", "abc1234")

    with pytest.raises(CommandError, match="ADMIN_PASSWORD is not accepted: .*too short") as refused:
        create_admin()

    assert "abc1234" not in str(refused.value)
    assert not get_user_model().objects.exists()


def test_run_feed_rejects_an_unknown_symbol():
    with pytest.raises(CommandError, match="no shipped data for DOGE/USD"):
        call_command("run_feed", "--symbol", "DOGE/USD", "--limit", "1", stdout=StringIO())


@pytest.mark.parametrize("speed", ["0", "-5"])
def test_run_feed_rejects_a_speed_that_is_not_positive(speed):
    with pytest.raises(CommandError, match="--speed must be positive"):
        call_command("run_feed", "--symbol", "BTC/USD", "--limit", "1", "--speed", speed, stdout=StringIO())


def feed(limit: int) -> str:
    out = StringIO()
    call_command("run_feed", "--symbol", "BTC/USD", "--limit", str(limit), "--speed", "1000000", stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_run_feed_replays_into_the_worker_and_resumes_after_the_stored_candles(
    wait_for_worker, make_strategy, btc_candles
):
    make_strategy("feed-btc", fast_period=3, slow_period=8)
    make_strategy("feed-gbp", strategy_class="rsi_mean_reversion", symbol="GBP/USD")

    def processed_up_to(candle) -> bool:
        return models.Strategy.objects.get(strategy_id="feed-btc").last_candle_time == candle.time

    first = feed(30)
    assert "BTC/USD 1m: 30 candles to replay" in first
    assert "replay finished: 30 candles sent" in first
    wait_for_worker(lambda: processed_up_to(btc_candles[29]), "the first 30 candles")
    assert list(models.Candle.objects.values_list("time", flat=True)) == [c.time for c in btc_candles[:30]]

    second = feed(10)
    assert f"BTC/USD 1m: 10 candles to replay after {btc_candles[29].time:%Y-%m-%d %H:%M}" in second
    wait_for_worker(lambda: processed_up_to(btc_candles[39]), "candles 31 to 40")

    assert list(models.Candle.objects.values_list("time", flat=True)) == [c.time for c in btc_candles[:40]]
    assert not models.Event.objects.filter(type="DATA_REJECTED").exists()
    assert models.Strategy.objects.get(strategy_id="feed-btc").status == "active"
    assert models.Strategy.objects.get(strategy_id="feed-gbp").last_candle_time is None


@pytest.mark.django_db(transaction=True)
def test_run_feed_with_keep_alive_stays_up_after_the_replay_so_the_stack_keeps_running(stack_env, redis_url, tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    import redis

    root = Path(__file__).resolve().parents[3]
    # Its candles go to a queue no worker reads, so they cannot land in a later test's database.
    queue = f"{stack_env['CELERY_QUEUE']}-unread"
    log = tmp_path / "feed.log"
    with log.open("wb") as out:
        feed_process = subprocess.Popen(
            [sys.executable, "manage.py", "run_feed", "--symbol", "GBP/USD", "--limit", "2", "--speed", "1000000",
             "--keep-alive"],
            cwd=root, env=stack_env | {"CELERY_QUEUE": queue}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "stays open" not in log.read_text():
            assert feed_process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(1)
        assert feed_process.poll() is None, "the feed exited after its replay"
        assert "replay finished: 2 candles sent" in log.read_text()
        assert redis.Redis.from_url(redis_url).llen(queue) == 2
    finally:
        feed_process.terminate()
        feed_process.wait(timeout=15)
        redis.Redis.from_url(redis_url).delete(queue)
