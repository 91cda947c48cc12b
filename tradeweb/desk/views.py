"""Pages and htmx partials. Each view parses the request, calls one function, renders."""

from __future__ import annotations

import json
from functools import wraps

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tradeweb.desk import (
    backtest_results, backtest_runs, config_history, models, pnl, portfolio, strategy_figures, tasks, trade_list,
)
from tradeweb.desk.control import (
    CONTROL_PERMISSION, AccountHalted, NotHalted, resume_account, resume_after_halt, set_active,
)
from tradeweb.desk.event_feed import FeedFilter, NoSuchKind, NoSuchStrategy
from tradeweb.desk.event_sentences import KIND_CHOICES
from tradeweb.desk.forms import BacktestForm
from tradeweb.desk.worker_status import desk_status


def card_context(
    request: HttpRequest, strategy: models.Strategy, exclusive: bool | None = None,
    figures: strategy_figures.StrategyFigures | None = None,
) -> dict:
    """What a strategy card shows: the strategy, its figures (status and why, equity sparkline, P&L today, open
    exposure, last event), whether the user may switch it, and whether its slot is exclusive (switching it on
    then switches another out, so it asks first)."""
    if exclusive is None:
        exclusive = models.Slot.objects.filter(account=strategy.account, symbol=strategy.symbol, exclusive=True).exists()
    if figures is None:
        figures = strategy_figures.figures([strategy])[strategy.strategy_id]
    return {
        "strategy": strategy,
        "figures": figures,
        "open_positions": figures.open_positions,
        "can_control": request.user.has_perm(CONTROL_PERMISSION),
        "exclusive": exclusive,
    }


def dashboard_strategies() -> list[models.Strategy]:
    """Every strategy, in the dashboard's order: by slot, then id."""
    return list(models.Strategy.objects.order_by("account", "symbol", "strategy_id"))


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """A card per strategy, grouped by slot, the portfolio table and combined equity chart, and the live event feed."""
    strategies = dashboard_strategies()
    figures = strategy_figures.figures(strategies)
    exclusive = set(models.Slot.objects.filter(exclusive=True).values_list("account", "symbol"))
    slots: dict[tuple[str, str], dict] = {}
    for strategy in strategies:
        key = (strategy.account, strategy.symbol)
        slot = slots.setdefault(key, {"account": key[0], "symbol": key[1], "exclusive": key in exclusive, "cards": []})
        slot["cards"].append(card_context(request, strategy, slot["exclusive"], figures[strategy.strategy_id]))
    table = portfolio.table(list(figures.values()), portfolio.TableChoice.from_query(request.GET))
    return render(
        request,
        "dashboard.html",
        {
            "slots": list(slots.values()),
            "strategies": strategies,
            "strategy_ids": [s.strategy_id for s in strategies],
            "feed": FeedFilter().read(),
            "event_kinds": KIND_CHOICES,
            "account_limits": models.AccountLimit.objects.all(),
            "can_control": request.user.has_perm(CONTROL_PERMISSION),
            "portfolio": table,
        },
    )


@login_required
@require_GET
def portfolio_table(request: HttpRequest) -> HttpResponse:
    """The portfolio table partial (and the combined chart's series), sorted as the query string asks: the dashboard
    swaps it in on a heading's click, and after strategy cards were refreshed by their events."""
    strategies = dashboard_strategies()
    table = portfolio.table(list(strategy_figures.figures(strategies).values()), portfolio.TableChoice.from_query(request.GET))
    return render(request, "partials/portfolio_table.html", {"portfolio": table})


def activity_context(strategy: models.Strategy) -> dict:
    """The strategy's latest positions, trades and journal lines."""
    return {
        "strategy": strategy,
        "positions": models.Position.objects.filter(strategy=strategy)[:100],
        "fills": models.Fill.objects.filter(strategy=strategy)[:100],
        "journal": models.JournalEntry.objects.filter(strategy=strategy)[:100],
    }


@login_required
@require_GET
def strategy_detail(request: HttpRequest, strategy_id: str) -> HttpResponse:
    """One strategy: its positions, trades, journal, events, its config versions and the control actions taken on it."""
    strategy = get_object_or_404(models.Strategy, strategy_id=strategy_id)
    context = card_context(request, strategy) | activity_context(strategy)
    context.update(
        controls=models.ControlAction.objects.filter(strategy=strategy).select_related("user")[:50],
        config_history=config_history.history(strategy),
        feed=FeedFilter((strategy.strategy_id,)).read(),
        strategy_ids=[strategy.strategy_id],
    )
    return render(request, "strategy_detail.html", context)


@login_required
@require_GET
def strategy_card(request: HttpRequest, strategy_id: str) -> HttpResponse:
    """The card partial, refreshed by the dashboard when one of the strategy's events arrives."""
    strategy = get_object_or_404(models.Strategy, strategy_id=strategy_id)
    return render(request, "partials/strategy_card.html", card_context(request, strategy))


@login_required
@require_GET
def strategy_activity(request: HttpRequest, strategy_id: str) -> HttpResponse:
    """Positions, trades and journal partial, refreshed by the strategy page when an event arrives."""
    strategy = get_object_or_404(models.Strategy, strategy_id=strategy_id)
    return render(request, "partials/strategy_activity.html", activity_context(strategy))


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    """Recent events of the strategies and kinds picked in the feed's filter (`strategy_id` and `kind`, each
    repeatable; none means all)."""
    try:
        feed = FeedFilter.parse(request.GET.getlist("strategy_id"), request.GET.getlist("kind"))
    except NoSuchStrategy as error:
        # Never echo the parameters: they are whatever a link put there.
        return render(request, "partials/event_list_error.html", {"message": str(error)}, status=404)
    except NoSuchKind as error:
        return render(request, "partials/event_list_error.html", {"message": str(error)}, status=400)
    return render(request, "partials/event_list.html", {"feed": feed.read()})


def switched(strategy_id: str) -> HttpResponse:
    """The answer to an htmx switch: no content, and a `strategy-switched` trigger naming the strategy.

    The card is not rendered here. The switch's event on the websocket is its acknowledgement and refreshes the
    cards of every strategy it moved (the one switched out too), as any event does; the trigger asks for the same
    refresh of this one (the page makes one of the two, after the burst), so the card moves even while the page's
    websocket is down. Rendering the card here as well would do that work twice, and in the process that relays
    the event, at the moment it relays it."""
    response = HttpResponse(status=204)
    response["HX-Trigger"] = json.dumps({"strategy-switched": {"strategy_id": strategy_id}})
    return response


def control_view(active: bool):
    """A POST view that activates or deactivates a strategy, for users with the control permission."""

    @login_required
    @permission_required(CONTROL_PERMISSION, raise_exception=True)
    @require_POST
    def view(request: HttpRequest, strategy_id: str) -> HttpResponse:
        try:
            strategy = set_active(strategy_id, request.user, active)
        except models.Strategy.DoesNotExist:
            raise Http404(f"No strategy {strategy_id!r}.") from None
        if request.headers.get("HX-Request"):
            return switched(strategy.strategy_id)
        return redirect("strategy_detail", strategy_id=strategy_id)

    view.__name__ = "activate" if active else "deactivate"
    view.__doc__ = f"{'Activate' if active else 'Deactivate'} a strategy and record who did it."
    return view


@login_required
@permission_required(CONTROL_PERMISSION, raise_exception=True)
@require_POST
def resume(request: HttpRequest, strategy_id: str) -> HttpResponse:
    """Lift a strategy's risk halt and record who did it."""
    try:
        strategy = resume_after_halt(strategy_id, request.user)
    except models.Strategy.DoesNotExist:
        raise Http404(f"No strategy {strategy_id!r}.") from None
    except NotHalted:
        return HttpResponse(f"Strategy {strategy_id} is not halted by its risk limits.", status=409)
    except AccountHalted as halted:
        return HttpResponse(f"Account {halted} is halted: resume the account.", status=409)
    if request.headers.get("HX-Request"):
        return render(request, "partials/strategy_card.html", card_context(request, strategy))
    return redirect("strategy_detail", strategy_id=strategy_id)


@login_required
@permission_required(CONTROL_PERMISSION, raise_exception=True)
@require_POST
def account_resume(request: HttpRequest, account: str) -> HttpResponse:
    """Lift an account's halt, and with it the halt of its strategies; recorded per strategy."""
    try:
        resume_account(account, request.user)
    except models.AccountLimit.DoesNotExist:
        raise Http404("No limits for this account.") from None
    except NotHalted:
        return HttpResponse("This account is not halted.", status=409)
    if request.headers.get("HX-Request"):
        limits = models.AccountLimit.objects.get(account=account)
        return render(request, "partials/account_limits.html", {"limits": limits, "can_control": True})
    return redirect("dashboard")


activate = control_view(True)
deactivate = control_view(False)


def staff_required(view):
    """Let only staff in: an anonymous user is sent to the login page, any other user gets 403."""

    @login_required
    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff may see the worker processes.")
        return view(request, *args, **kwargs)

    return guarded


@staff_required
@require_GET
def worker_status(request: HttpRequest) -> HttpResponse:
    """The worker processes' orchestrator caches and the strategies' lag, for staff."""
    return render(request, "worker_status.html", {"status": desk_status()})


@staff_required
@require_GET
def worker_status_tables(request: HttpRequest) -> HttpResponse:
    """Both tables of the status page, polled by it every few seconds."""
    return render(request, "partials/worker_status.html", {"status": desk_status()})


@login_required
@require_GET
def backtest_list(request: HttpRequest) -> HttpResponse:
    """Backtests side by side, newest first: when, by whom, how they stand, and the portfolio's figures."""
    return render(request, "backtest_list.html", {
        "runs": models.BacktestRun.objects.select_related("created_by")[:200],
        "can_start": request.user.has_perm(CONTROL_PERMISSION),
    })


# Starting and cancelling a backtest take the control permission: a backtest runs on the workers that advance
# the live strategies, so only those trusted to steer the desk may spend them (and stop any run, whoever started it).
@login_required
@permission_required(CONTROL_PERMISSION, raise_exception=True)
@require_http_methods(["GET", "POST"])
def backtest_new(request: HttpRequest) -> HttpResponse:
    """The New backtest form; a valid one queues the run and opens its page, an invalid one queues nothing."""
    form = BacktestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            run = backtest_runs.start(form.backtest_request(), request.user, tasks.queue_backtest)
            return redirect("backtest_progress", run_id=run.pk)
        return render(request, "backtest_new.html", {"form": form}, status=400)
    return render(request, "backtest_new.html", {"form": form})


def progress_context(request: HttpRequest, run: models.BacktestRun) -> dict:
    """What the progress partial shows: how far the run got, and whether the user may cancel it."""
    return {"progress": run.progress(), "can_cancel": request.user.has_perm(CONTROL_PERMISSION)}


@login_required
@require_GET
def backtest_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run on its way (its progress bar, live over the websocket), or how it ended without a result; a done
    run's results page instead."""
    run = get_object_or_404(models.BacktestRun.objects.select_related("created_by"), pk=run_id)
    if run.status == models.BacktestRun.Status.DONE:
        return redirect("backtest_detail", run_id=run.pk)
    return render(request, "backtest_run.html", {"run": run} | progress_context(request, run))


@login_required
@permission_required(CONTROL_PERMISSION, raise_exception=True)
@require_POST
def backtest_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cancel a queued or running backtest and record who did it."""
    try:
        run = backtest_runs.cancel(run_id, request.user)
    except models.BacktestRun.DoesNotExist:
        raise Http404(f"No backtest {run_id}.") from None
    except backtest_runs.RunEnded:
        return HttpResponse(f"Backtest {run_id} has ended already.", status=409)
    if request.headers.get("HX-Request"):
        return render(request, "partials/backtest_progress.html", progress_context(request, run))
    return redirect("backtest_progress", run_id=run.pk)


@login_required
@require_GET
def backtest_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One backtest: the strategies and the portfolio compared, equity and drawdown charts, every trade (sortable);
    a run without a result (yet) shows its progress page instead."""
    run = get_object_or_404(models.BacktestRun, pk=run_id)
    if run.status != models.BacktestRun.Status.DONE:
        return redirect("backtest_progress", run_id=run.pk)
    sort = request.GET.get("sort", "exit_time")
    sort = sort if sort in backtest_results.TRADE_SORTS else "exit_time"
    descending = request.GET.get("order") == "desc"
    return render(request, "backtest_detail.html", backtest_results.page(run, sort, descending))


@login_required
@require_GET
def backtest_export(request: HttpRequest, run_id: int, kind: str) -> HttpResponse:
    """A backtest's trades as CSV, or the whole result as JSON (the shape `manage.py backtest --json` writes)."""
    run = get_object_or_404(models.BacktestRun, pk=run_id, status=models.BacktestRun.Status.DONE)
    if kind == "json":
        response = JsonResponse(backtest_results.stored_json(run))
    elif kind == "csv":
        response = HttpResponse(backtest_results.trades_csv(run), content_type="text/csv")
    else:
        raise Http404("Export as json or csv.")
    response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}.{kind}"'
    return response


@login_required
@require_GET
def strategy_pnl(request: HttpRequest, strategy_id: str) -> HttpResponse:
    """One strategy's P&L over a period of market time: equity and drawdown charts, metrics, breakdown, trades."""
    strategy = get_object_or_404(models.Strategy, strategy_id=strategy_id)
    return render(request, "strategy_pnl.html", pnl.page(strategy, pnl.PageChoice.from_query(request.GET)))


@login_required
@require_GET
def strategy_pnl_live(request: HttpRequest, strategy_id: str) -> JsonResponse:
    """What the P&L page redraws when the strategy's events arrive: its charts' data and its live partial, for the
    choices in the query (the page's own)."""
    strategy = get_object_or_404(models.Strategy, strategy_id=strategy_id)
    context = pnl.page(strategy, pnl.PageChoice.from_query(request.GET))
    html = render_to_string("partials/pnl_live.html", context, request=request)
    return JsonResponse({"charts": context["charts"], "html": html})


@login_required
@require_GET
def strategy_pnl_export(request: HttpRequest, strategy_id: str, what: str, kind: str) -> HttpResponse:
    """A strategy's trades or full-resolution equity curve over the chosen period, as CSV or JSON."""
    strategy = get_object_or_404(models.Strategy, strategy_id=strategy_id)
    if what not in ("trades", "equity") or kind not in ("csv", "json"):
        raise Http404("Export trades or equity as csv or json.")
    rows, columns, about = pnl.export(strategy, what, pnl.PageChoice.from_query(request.GET).period)
    if kind == "json":
        response = JsonResponse(about | {what: rows})
    else:
        response = HttpResponse(trade_list.rows_csv(rows, columns), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{strategy.strategy_id}-{what}-{about["period"]}.{kind}"'
    return response
