"""The New backtest form: the desk's strategies with a weight each, the period, the capital and the costs.

The form only reads numbers and times; what makes a backtest valid is `build_spec`'s (the core's
`BacktestSpec.problems()` and each strategy's config), whose every problem is shown on the field it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django import forms

from orchestrator.backtest import InvalidBacktest
from tradeweb.desk import models
from tradeweb.desk.backtest_requests import (
    ALLOCATION_KEY, BacktestRequest, CandleRange, PortfolioPart, build_spec, candle_ranges, period_problems,
)

DATETIME_INPUT = "%Y-%m-%dT%H:%M"
# The problems build_spec names that one input of the form stands for; a period that ends before it starts is
# shown on its end.
FIELD_OF_PROBLEM = {"capital": "capital", "start": "start", "end": "end", "period": "end",
                    "fee_rate": "fee", "slippage": "slippage"}


def moment_input() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT)


def number_field(**kwargs) -> forms.DecimalField:
    return forms.DecimalField(max_digits=30, decimal_places=10, widget=forms.TextInput(attrs={"inputmode": "decimal"}), **kwargs)


@dataclass(frozen=True)
class StrategyRow:
    """One line of the form's strategy table: the strategy, its weight input, the candles of its market."""

    strategy: models.Strategy
    field: forms.BoundField
    ranges: list[CandleRange]


class BacktestForm(forms.Form):
    """A backtest of the desk's stored strategies: each with a weight (empty: left out)."""

    start = forms.DateTimeField(required=False, widget=moment_input(), label="From (UTC)",
                                help_text="Candles opened at or after it; empty: from the first.")
    end = forms.DateTimeField(required=False, widget=moment_input(), label="To (UTC)",
                              help_text="Candles opened before it; empty: to the last.")
    capital = number_field(initial=Decimal("10000"), help_text="Of the whole portfolio; what no weight takes stays cash.")
    fee = number_field(required=False, label="Fee rate",
                       help_text="For every strategy, as a fraction of the traded value (0.0004 = 0.04%); empty: each config's own.")
    slippage = number_field(required=False,
                            help_text="For every strategy, as a fraction of the price; empty: each config's own.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.strategies = list(models.Strategy.objects.order_by("strategy_id"))
        for strategy in self.strategies:
            self.fields[self.weight_name(strategy)] = number_field(
                required=False, label=f"Weight of {strategy.strategy_id}",
            )
        ranges = {
            market: candle_ranges(*market) for market in sorted({(s.symbol, s.timeframe) for s in self.strategies})
        }
        self.rows = [
            StrategyRow(s, self[self.weight_name(s)], ranges[(s.symbol, s.timeframe)]) for s in self.strategies
        ]
        if not self.is_bound:
            self.initial.update(zip(("start", "end"), default_period(ranges)))

    @staticmethod
    def weight_name(strategy: models.Strategy) -> str:
        return f"weight_{strategy.strategy_id}"

    def backtest_request(self) -> BacktestRequest:
        """The backtest asked for (on a valid form)."""
        data = self.cleaned_data
        parts = tuple(
            PortfolioPart(s.strategy_id, data[self.weight_name(s)])
            for s in self.strategies if data.get(self.weight_name(s)) is not None
        )
        return BacktestRequest(parts, data["capital"], data["start"], data["end"], data["fee"], data["slippage"])

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data  # a number or a time that cannot be read: nothing to check it with yet
        request = self.backtest_request()
        try:
            spec = build_spec(request)
        except InvalidBacktest as invalid:
            self.show(request, invalid.errors)
            return data
        self.show(request, period_problems(spec))
        return data

    def show(self, request: BacktestRequest, problems: dict[str, str]) -> None:
        """Each problem on the input it names; those naming none (the weights together, the strategies) on the form."""
        by_id = {s.strategy_id: s for s in self.strategies}
        for name, message in problems.items():
            found = ALLOCATION_KEY.match(name)
            if found:
                self.add_error(self.weight_name(by_id[request.parts[int(found[1])].strategy_id]), message)
            elif name in FIELD_OF_PROBLEM:
                self.add_error(FIELD_OF_PROBLEM[name], message)
            elif name == "allocations":
                self.add_error(None, "Give at least one strategy a weight.")
            else:
                self.add_error(None, f"{name}: {message}")


def default_period(ranges: dict[tuple[str, str], list[CandleRange]]) -> tuple[datetime | None, datetime | None]:
    """From the first to the end of the last stored candle of the strategies' markets; without any stored, of the
    shipped datasets they would run on."""
    every = [r for market_ranges in ranges.values() for r in market_ranges]
    chosen = [r for r in every if r.source == "stored"] or every
    if not chosen:
        return None, None
    return min(r.start for r in chosen), max(r.end for r in chosen)
