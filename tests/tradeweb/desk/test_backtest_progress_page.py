"""A backtest's page while it runs and how it ended, and its Cancel button: permission, CSRF, what a cancel does
to a queued, a running and an ended run."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from tradeweb.desk import backtest_runs, models
from tradeweb.desk.backtest_requests import BacktestRequest, PortfolioPart

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def queue(user, *strategy_ids: str) -> models.BacktestRun:
    """A queued run whose task is held back (no worker takes it)."""
    request = BacktestRequest(tuple(PortfolioPart(sid, Decimal("0.5")) for sid in strategy_ids), Decimal(10_000))
    return backtest_runs.start(request, user, send=lambda run_id, task_id: None)


@pytest.fixture
def operator(make_user):
    return make_user("operator", can_control=True)


@pytest.fixture
def running(make_strategy, operator):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    run = queue(operator, "btc-sma")
    models.BacktestRun.objects.filter(pk=run.pk).update(status="running", candles_done=300, candles_total=1440)
    return run


def progress_url(run) -> str:
    return reverse("backtest_progress", args=[run.pk])


def cancel_url(run) -> str:
    return reverse("backtest_cancel", args=[run.pk])


def test_it_works(client, running, operator):
    client.force_login(operator)

    page = client.get(progress_url(running))

    html = page.content.decode()
    assert page.status_code == 200
    assert '<progress max="1440" value="300">' in html and "300 of 1440 candles (20.8%)" in html
    assert f'hx-post="{cancel_url(running)}"' in html
    assert "btc-sma x 0.5" in html and 'src="/static/js/backtest_run.js"' in html


def test_a_viewer_sees_the_progress_without_the_cancel_button(client, running, make_user):
    client.force_login(make_user("viewer"))

    html = client.get(progress_url(running)).content.decode()

    assert "300 of 1440 candles" in html and "backtest_cancel" not in html and cancel_url(running) not in html


def test_a_failed_run_shows_its_error_and_the_list_says_failed(client, make_strategy, operator):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    run = queue(operator, "btc-sma")
    models.Strategy.objects.filter(strategy_id="btc-sma").delete()  # gone before a worker took the run

    assert backtest_runs.execute(run.pk) == "failed"

    client.force_login(operator)
    html = client.get(progress_url(run)).content.decode()
    assert "allocations[0].strategy_id: no strategy &#x27;btc-sma&#x27;" in html
    assert "Failed" in html and "Cancel" not in html
    row = client.get(reverse("backtest_list")).content.decode().split(f'id="run-{run.pk}"')[1].split("</tr>")[0]
    assert 'data-status="failed"' in row and "Failed" in row and "no strategy" in row


def test_pages_of_a_run_without_a_result_lead_to_its_progress_and_exports_are_404(client, running, operator):
    client.force_login(operator)

    detail = client.get(reverse("backtest_detail", args=[running.pk]))

    assert detail.status_code == 302 and detail["Location"] == progress_url(running)
    assert client.get(reverse("backtest_export", args=[running.pk, "json"])).status_code == 404
    assert client.get(reverse("backtest_list")).content.decode().count(progress_url(running)) == 1


def test_cancelling_a_running_run_asks_its_worker_to_stop(client, running, operator):
    client.force_login(operator)

    response = client.post(cancel_url(running), headers=HTMX)

    run = models.BacktestRun.objects.get(pk=running.pk)
    assert response.status_code == 200 and "cancelling…" in response.content.decode()
    assert (run.status, run.cancelled_by) == ("running", operator) and run.cancel_requested_at is not None
    assert 'class="cancel"' not in response.content.decode()


def test_cancelling_a_queued_run_ends_it_at_once_and_its_task_leaves_it(client, make_strategy, operator):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    run = queue(operator, "btc-sma")
    client.force_login(operator)

    response = client.post(cancel_url(run))

    assert response.status_code == 302 and response["Location"] == progress_url(run)
    assert backtest_runs.execute(run.pk) == "cancelled"
    run.refresh_from_db()
    assert (run.status, run.started_at, run.candles_total) == ("cancelled", None, 0)
    assert not run.strategies.exists()
    assert 'data-status="cancelled"' in client.get(reverse("backtest_list")).content.decode()


def test_an_ended_run_cannot_be_cancelled(client, running, operator):
    models.BacktestRun.objects.filter(pk=running.pk).update(status="failed", error="boom")
    client.force_login(operator)

    response = client.post(cancel_url(running))

    assert response.status_code == 409
    assert models.BacktestRun.objects.get(pk=running.pk).cancel_requested_at is None


def test_cancel_checks_access_and_method(client, running, make_user):
    assert client.post(cancel_url(running))["Location"].startswith(reverse("login"))
    client.force_login(make_user("viewer"))
    assert client.post(cancel_url(running)).status_code == 403
    client.force_login(make_user("operator-2", can_control=True))
    assert client.get(cancel_url(running)).status_code == 405
    assert client.post(reverse("backtest_cancel", args=[running.pk + 1000])).status_code == 404
    assert models.BacktestRun.objects.get(pk=running.pk).cancel_requested_at is None


def test_cancel_needs_the_csrf_token_htmx_sends(running, operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    html = client.get(progress_url(running)).content.decode()
    token = re.search(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""", html)[1]

    assert client.post(cancel_url(running), headers=HTMX).status_code == 403
    assert client.post(cancel_url(running), headers=HTMX | {"X-CSRFToken": "x" * 64}).status_code == 403
    assert models.BacktestRun.objects.get(pk=running.pk).cancel_requested_at is None
    assert client.post(cancel_url(running), headers=HTMX | {"X-CSRFToken": token}).status_code == 200
    assert models.BacktestRun.objects.get(pk=running.pk).cancel_requested_at is not None


def test_the_progress_page_needs_a_login_and_a_known_run(client, running, operator):
    assert client.get(progress_url(running))["Location"].startswith(reverse("login"))
    client.force_login(operator)
    assert client.get(reverse("backtest_progress", args=[running.pk + 1000])).status_code == 404
    assert client.post(progress_url(running)).status_code == 405
