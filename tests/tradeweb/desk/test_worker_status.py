"""The worker processes' status: `manage.py orchestrators` and the staff page /workers/, read from a real
Celery worker that processed real candles, and each strategy's lag behind its market's newest candle."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from io import StringIO
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from orchestrator.market_rules import feed_messages
from tests.conftest import ROOT, TEST_QUEUE, free_port
from tests.tradeweb.desk.test_browser import browser, csp_violations, log_in  # noqa: F401 (browser is a fixture)
from tests.worker_processes import Worker
from tradeweb.desk import models, redis_client
from tradeweb.desk.orchestrators import reported_statuses
from tradeweb.desk.tasks import process_candle
from tradeweb.desk.worker_status import NO_WORKER_REPORTED, Lag, format_duration, lag_behind

PAGE = reverse("worker_status")
TABLES = reverse("worker_status_tables")
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def orchestrators_output(*args: str) -> str:
    out = StringIO()
    call_command("orchestrators", *args, stdout=out)
    return out.getvalue()


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the command's table row that starts with `first_cell` (cells are two or more spaces apart)."""
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row for {first_cell!r} in:\n{output}")


def html_row(html: str, attribute: str) -> list[str]:
    """The text of each cell of the page's table row carrying `attribute`."""
    row = re.search(rf"<tr {attribute}[^>]*>(.*?)</tr>", html, re.S)
    assert row, f"no row with {attribute} in:\n{html}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def make_staff(make_user, username: str = "ops", password: str = "pw-for-tests-only"):
    user = make_user(username, password=password)
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    user.refresh_from_db()
    return user


def store_candles(symbol: str, timeframe: str, count: int, step: timedelta) -> list[datetime]:
    """`count` chained candles of a market, stored as the feed stores them; returns their times."""
    times = [T0 + i * step for i in range(count)]
    for previous, time in zip([None, *times], times):
        models.Candle.objects.create(
            symbol=symbol, timeframe=timeframe, time=time, previous_time=previous,
            open=Decimal(100), high=Decimal(101), low=Decimal(99), close=Decimal(100),
        )
    return times


@pytest.fixture
def processed(wait_for_worker, make_strategy, btc_candles) -> SimpleNamespace:
    """The real worker processed 30 real BTC/USD candles for the active `alpha`; the dormant `laggard`
    stands at candle 10 of them, 20 behind."""
    candles = btc_candles[:30]
    make_strategy("alpha")
    make_strategy("laggard", status="dormant")
    for message in feed_messages(candles):
        process_candle.delay(message)
    wait_for_worker(
        lambda: models.Strategy.objects.get(strategy_id="alpha").last_candle_time == candles[-1].time,
        "the worker to process the last candle",
    )
    models.Strategy.objects.filter(strategy_id="laggard").update(last_candle_time=candles[9].time)
    return SimpleNamespace(alpha=models.Strategy.objects.get(strategy_id="alpha"), candles=candles)


@pytest.fixture
def unused_status_prefix(settings):
    """Read worker reports under a prefix no process reports to."""
    settings.WORKER_STATUS_PREFIX = f"{settings.WORKER_STATUS_PREFIX}-nobody"


@pytest.fixture
def redis_unreachable(settings, monkeypatch) -> int:
    """REDIS_URL points at a closed port, and status reads connect afresh; returns the port."""
    port = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    monkeypatch.setattr(redis_client, "_client", None)
    return port


def test_lag_counts_whole_candles_of_the_timeframe_and_the_time():
    assert lag_behind(T0, T0 + timedelta(minutes=20), "1m") == Lag(20, timedelta(minutes=20))
    assert lag_behind(T0, T0 + timedelta(hours=9), "4h") == Lag(2, timedelta(hours=9))
    assert lag_behind(T0, T0, "1d") == Lag(0, timedelta(0))
    assert lag_behind(T0 + timedelta(minutes=5), T0, "1m") == Lag(0, timedelta(0))
    assert lag_behind(None, T0, "1m") is None
    assert lag_behind(T0, None, "1m") is None
    assert Lag(1, timedelta(minutes=5)).text == "1 candle (5m)"


def test_durations_read_in_their_two_largest_units():
    assert [format_duration(timedelta(seconds=s)) for s in (0, 45, 60, 1230, 3600, 7500, 97200, 90061)] == [
        "0s", "45s", "1m", "20m 30s", "1h", "2h 5m", "1d 3h", "1d 1h",
    ]


@pytest.mark.django_db(transaction=True)
def test_command_names_the_worker_that_processed_the_candles(processed):
    output = orchestrators_output()

    worker = table_row(output, processed.alpha.last_worker)
    assert re.fullmatch(r"[^:\s]+:\d+", processed.alpha.last_worker)
    cached, capacity = map(int, worker[1].split("/"))
    assert 1 <= cached <= capacity
    assert int(worker[3]) >= 1, "misses"
    builds, from_snapshot = map(int, re.fullmatch(r"(\d+) \((\d+)\)", worker[7]).groups())
    assert builds >= 1 and 0 <= from_snapshot <= builds
    assert float(worker[9]) > 10, "RSS MiB of a Python process"
    assert worker[10].endswith(" ago")
    newest = f"{processed.candles[-1].time:%Y-%m-%d %H:%M:%S}"
    assert table_row(output, "alpha") == [
        "alpha", "active", "BTC/USD 1m", processed.alpha.last_worker, newest, newest, "0 candles (0s)",
    ]
    assert table_row(output, "laggard") == [
        "laggard", "dormant", "BTC/USD 1m", "-", f"{processed.candles[9].time:%Y-%m-%d %H:%M:%S}", newest,
        "20 candles (20m)",
    ]
    assert "Strategies: 2, 0 lagging" in output


@pytest.mark.django_db(transaction=True)
def test_page_shows_the_worker_and_the_lag(processed, client, make_user):
    client.force_login(make_staff(make_user))

    for url in (PAGE, TABLES):
        html = client.get(url).content.decode()

        worker = html_row(html, f'data-worker="{processed.alpha.last_worker}"')
        assert worker[0] == processed.alpha.last_worker
        assert int(worker[3]) >= 1, "misses"
        assert int(worker[7].split()[0]) >= 1, "builds"
        assert html_row(html, 'data-strategy-id="alpha"')[3:] == [
            processed.alpha.last_worker, *[f"{processed.candles[-1].time:%Y-%m-%d %H:%M:%S}"] * 2, "0 candles (0s)", "",
        ]
        assert html_row(html, 'data-strategy-id="laggard"')[6:] == ["20 candles (20m)", ""]


@pytest.mark.django_db
def test_command_flags_an_active_strategy_that_lags(make_strategy, unused_status_prefix):
    times = store_candles("ETH/USD", "5m", 12, timedelta(minutes=5))
    make_strategy("slow", symbol="ETH/USD", timeframe="5m")
    make_strategy("steady", symbol="ETH/USD", timeframe="5m")
    make_strategy("resting", symbol="ETH/USD", timeframe="5m", status="dormant")
    make_strategy("unfed", symbol="SOL/USD")
    models.Strategy.objects.filter(strategy_id="slow").update(last_candle_time=times[3], last_worker="gone-host:41")

    output = orchestrators_output()

    assert table_row(output, "slow")[3:] == [
        "gone-host:41 (not reporting)", "2024-03-01 00:15:00", "2024-03-01 00:55:00", "8 candles (40m)", "LAGGING",
    ]
    assert table_row(output, "steady")[4:] == ["2024-03-01 00:55:00", "2024-03-01 00:55:00", "0 candles (0s)"]
    assert table_row(output, "resting")[4:] == ["-", "2024-03-01 00:55:00", "no candle processed"]
    assert table_row(output, "unfed")[4:] == ["-", "-", "no candle stored"]
    assert "Strategies: 4, 1 lagging" in output
    active = orchestrators_output("--active")
    assert "Active strategies: 3, 1 lagging" in active
    assert "resting" not in active


@pytest.mark.django_db
def test_command_says_when_no_worker_reported(make_strategy, unused_status_prefix):
    make_strategy("alpha")

    output = orchestrators_output()

    assert "Worker processes at " in output
    assert output.splitlines()[0].endswith(f": {NO_WORKER_REPORTED}")
    assert NO_WORKER_REPORTED == "no worker process has reported in the last 2 minutes"
    assert "worker  cached" not in output
    assert table_row(output, "alpha")[:3] == ["alpha", "active", "BTC/USD 1m"]


@pytest.mark.django_db
def test_an_idle_pool_process_keeps_reporting_its_status(stack_env, tmp_path):
    """Without a heartbeat a worker that takes no candles would drop off the page when its report expires."""
    queue = f"{TEST_QUEUE}-idle-{uuid.uuid4().hex[:8]}"
    worker = Worker("idle", queue, stack_env | {"CELERY_QUEUE": queue, "WORKER_STATUS_HEARTBEAT_SECONDS": "0.5"}, tmp_path)
    seen: list[str] = []

    def reports_of(pid: int) -> list[dict]:
        return [s for s in reported_statuses() if s["worker"].endswith(f":{pid}")]

    def reported_twice() -> bool:
        seen.extend(s["reported_at"] for s in reports_of(pool_pid) if s["reported_at"] not in seen)
        return len(seen) >= 2

    try:
        worker.launch()
        worker.wait_ready()
        pool_pid = worker.pool()[0].pid
        deadline = time.monotonic() + 30
        while not reported_twice():
            assert time.monotonic() < deadline, f"no two status reports from the idle pool process:\n{worker.log_tail()}"
            time.sleep(0.1)
        assert reports_of(worker.process.pid) == [], "the main process runs no orchestrator and reports nothing"
    finally:
        worker.stop()
    assert seen[0] < seen[1]
    assert reports_of(pool_pid)[0]["cache"]["hits"] == 0


def test_command_fails_when_redis_is_unreachable(stack_env):
    port = free_port()
    env = stack_env | {"REDIS_URL": f"redis://:secret-pw@127.0.0.1:{port}/0"}

    finished = subprocess.run(
        [sys.executable, "manage.py", "orchestrators"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode != 0
    assert f"Redis at 127.0.0.1:{port}/0 is unreachable" in finished.stderr
    assert "check that Redis runs and that REDIS_URL points at it" in finished.stderr
    assert "secret-pw" not in finished.stderr + finished.stdout
    assert "unknown, Redis cannot be read" in finished.stdout


@pytest.mark.django_db
def test_page_says_when_redis_is_unreachable_and_still_shows_the_strategies(client, make_user, make_strategy, redis_unreachable):
    make_strategy("alpha")
    client.force_login(make_staff(make_user))

    response = client.get(TABLES)

    assert response.status_code == 200
    html = response.content.decode()
    assert f"Redis at 127.0.0.1:{redis_unreachable}/0 is unreachable" in html
    assert html_row(html, 'data-strategy-id="alpha"')[:3] == ["alpha", "active", "BTC/USD 1m"]


@pytest.mark.django_db
def test_page_says_when_no_worker_reported(client, make_user, unused_status_prefix):
    client.force_login(make_staff(make_user))

    html = client.get(PAGE).content.decode()

    assert "No worker process has reported in the last 2 minutes." in html
    assert "No strategies yet." in html


@pytest.mark.django_db
def test_page_polls_its_tables_without_inline_script(client, make_user, unused_status_prefix):
    client.force_login(make_staff(make_user))

    html = client.get(PAGE).content.decode()

    assert f'hx-get="{TABLES}" hx-trigger="every 5s" hx-swap="outerHTML"' in html
    tables = client.get(TABLES).content.decode()
    assert f'id="worker-status" class="worker-status" hx-get="{TABLES}"' in tables, "the poll keeps polling"
    for tag in html.split("<script")[1:]:
        assert " src=" in tag.split(">", 1)[0]


@pytest.mark.django_db
@pytest.mark.parametrize("url", [PAGE, TABLES])
def test_it_checks_access(client, make_user, url, unused_status_prefix):
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"{reverse('login')}?next={url}"

    client.force_login(make_user("trader", can_control=True))
    assert client.get(url).status_code == 403

    client.force_login(make_staff(make_user))
    assert client.get(url).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", [PAGE, TABLES])
def test_it_rejects_post(client, make_user, url):
    client.force_login(make_staff(make_user))

    assert client.post(url).status_code == 405


@pytest.mark.django_db
def test_navigation_links_the_page_for_staff_only(client, make_user):
    link = f'<a href="{PAGE}">Workers</a>'
    client.force_login(make_user("trader"))
    assert link not in client.get(reverse("dashboard")).content.decode()

    client.force_login(make_staff(make_user))
    assert link in client.get(reverse("dashboard")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_page_refreshes_its_tables_in_a_browser_under_the_policy(daphne_url, browser, make_strategy, make_user):
    from playwright.sync_api import expect

    times = store_candles("ETH/USD", "5m", 12, timedelta(minutes=5))
    make_strategy("slow", symbol="ETH/USD", timeframe="5m")
    make_staff(make_user, "ops", password="a-long-test-password")
    page = browser.new_page()
    violations = csp_violations(page)
    log_in(page, daphne_url, "ops", "a-long-test-password")
    page.click("text=Workers")
    row = page.locator('tr[data-strategy-id="slow"]')
    expect(row).to_contain_text("0 candles (0s)")
    page.evaluate("window.__not_reloaded = true")

    models.Strategy.objects.filter(strategy_id="slow").update(last_candle_time=times[3])

    expect(row).to_contain_text("8 candles (40m)", timeout=15_000)
    expect(row.locator(".flag")).to_have_text("lagging")
    assert page.evaluate("window.__not_reloaded") is True
    assert violations == []
