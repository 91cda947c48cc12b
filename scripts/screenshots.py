"""Refresh the screenshots in docs/screenshots/ (`make screenshots`): a desk of its own in a temporary SQLite
database, the demo strategies fed real candles through the live path, a stored portfolio backtest, Daphne serving
it, and headless Chromium taking the dashboard (laptop and phone), a P&L page and a backtest's results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CANDLES = 900  # per market: fifteen hours of one-minute candles, enough for trades, exits and a curve
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
USERNAME, PASSWORD = "demo", "demo-password"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def configure(directory: Path) -> dict[str, str]:
    """This process's and Daphne's environment: the temporary database, plain HTTP, a channel prefix of its own."""
    env = {
        "DATABASE_URL": f"sqlite:///{directory / 'screenshots.sqlite3'}",
        "CHANNELS_PREFIX": f"screenshots-{os.getpid()}",
        "DEBUG": "1",
        "DEMO_USERNAME": USERNAME, "DEMO_PASSWORD": PASSWORD,
        "SECURE_SSL_REDIRECT": "0", "SECURE_HSTS_SECONDS": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
        "DJANGO_SETTINGS_MODULE": "tradeweb.settings", "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    return {**os.environ, **env}


def build_desk() -> int:
    """The demo desk with some history; returns the stored backtest's id."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from orchestrator.backtest import Allocation, BacktestSpec, run_backtest
    from orchestrator.config import config_to_json
    from orchestrator.datasets import load_candles
    from strategies import build_strategy, parse_strategy_config
    from tradeweb.desk import live, models
    from tradeweb.desk.backtest_results import store_run

    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    # A second BTC/USD strategy in an exclusive slot, so the dashboard shows a switch.
    models.Slot.objects.update_or_create(account="paper", symbol="BTC/USD", defaults={"exclusive": True})
    models.Strategy.objects.get_or_create(
        strategy_id="btc-rsi-revert", defaults=dict(
            name="BTC RSI mean reversion", strategy_class="rsi_mean_reversion", symbol="BTC/USD", timeframe="1m",
            capital=Decimal(10_000), status=models.Strategy.Status.DORMANT,
            config=config_to_json(parse_strategy_config("rsi_mean_reversion", {"rsi_period": 14})),
        ),
    )
    for symbol in ("BTC/USD", "GBP/USD"):
        for candle in load_candles(symbol, "1m", limit=CANDLES):
            live.ingest_candle(candle.to_mapping())
    allocations = [
        Allocation("btc-sma-cross", build_strategy("sma_crossover", {"fast_period": 10, "slow_period": 30}),
                   "BTC/USD", "15m", Decimal("0.5")),
        Allocation("btc-sma-slow", build_strategy("sma_crossover", {"fast_period": 20, "slow_period": 60}),
                   "BTC/USD", "15m", Decimal("0.4")),
    ]
    result = run_backtest(BacktestSpec(allocations, Decimal(10_000)), {("BTC/USD", "15m"): load_candles("BTC/USD", "15m")})
    return store_run(result, get_user_model().objects.get(username=USERNAME)).pk


def shoot(base: str, backtest_id: int) -> list[Path]:
    """Log in and take each page once its charts are drawn."""
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
        for name, path, viewport, charts in (
            ("dashboard.png", "/", LAPTOP, 0),
            ("dashboard-phone.png", "/", PHONE, 0),
            ("pnl.png", "/strategies/btc-sma-cross/pnl/", LAPTOP, 2),
            ("backtest.png", f"/backtests/{backtest_id}/", LAPTOP, 2),
        ):
            page = browser.new_page(viewport=viewport)
            page.goto(base + "/accounts/login/")
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            if charts:
                page.wait_for_function(f"document.querySelectorAll('canvas').length >= {charts}")
            page.wait_for_timeout(500)  # the charts' first frame
            page.screenshot(path=str(OUT / name), full_page=True)
            taken.append(OUT / name)
            page.close()
        browser.close()
    return taken


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tradeweb-screenshots-") as directory:
        env = configure(Path(directory))
        print("building the desk: demo strategies, live candles, a backtest ...", flush=True)
        backtest_id = build_desk()
        port = free_port()
        log = Path(directory) / "daphne.log"
        with log.open("wb") as out:
            daphne = subprocess.Popen(
                [sys.executable, "-m", "tradeweb.server", "-b", "127.0.0.1", "-p", str(port), "tradeweb.asgi:application"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while "Listening on" not in log.read_text(errors="replace"):
                if daphne.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"Daphne did not start:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
            for path in shoot(f"http://127.0.0.1:{port}", backtest_id):
                print(f"wrote {path.relative_to(ROOT)}")
        finally:
            daphne.terminate()
            daphne.wait(timeout=15)


if __name__ == "__main__":
    main()
