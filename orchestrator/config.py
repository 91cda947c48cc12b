"""Typed, frozen strategy configs built from JSON, with errors per field."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, TypeVar


class InvalidConfig(ValueError):
    """A config that cannot be used; `errors` maps each field name to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class StrategyConfig:
    """Settings every strategy has: risk rules and the paper exchange's costs.

    Fractions are plain ratios: 0.02 is two percent.
    """

    position_size: Decimal = Decimal("0.1")
    stop_loss_pct: Decimal | None = Decimal("0.02")
    take_profit_pct: Decimal | None = Decimal("0.04")
    max_open_positions: int = 1
    fee_rate: Decimal = Decimal("0.0004")
    slippage: Decimal = Decimal("0.0002")
    allow_short: bool = False
    # Risk halts (empty: none). Drawdown from peak equity and loss since the UTC day began, as fractions
    # of that peak / the day's first equity; gross exposure as open notional over equity.
    max_drawdown_pct: Decimal | None = None
    daily_loss_pct: Decimal | None = None
    max_gross_exposure: Decimal | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidConfig(problems)

    def problems(self) -> dict[str, str]:
        """Cross-field and range checks; subclasses extend the dict they get from super()."""
        problems: dict[str, str] = {}
        if not Decimal(0) < self.position_size <= Decimal(1):
            problems["position_size"] = "must be above 0 and at most 1 (a fraction of capital)"
        for name in ("stop_loss_pct", "take_profit_pct"):
            value = getattr(self, name)
            if value is not None and not Decimal(0) < value < Decimal(1):
                problems[name] = "must be above 0 and below 1, or empty for none"
        if self.max_open_positions < 1:
            problems["max_open_positions"] = "must be at least 1"
        if not Decimal(0) <= self.fee_rate < Decimal("0.1"):
            problems["fee_rate"] = "must be between 0 and 0.1"
        if not Decimal(0) <= self.slippage < Decimal("0.1"):
            problems["slippage"] = "must be between 0 and 0.1"
        for name in ("max_drawdown_pct", "daily_loss_pct"):
            value = getattr(self, name)
            if value is not None and not Decimal(0) < value < Decimal(1):
                problems[name] = "must be above 0 and below 1, or empty for none"
        if self.max_gross_exposure is not None and not Decimal(0) < self.max_gross_exposure <= Decimal(10):
            problems["max_gross_exposure"] = "must be above 0 and at most 10 (open notional over equity), or empty"
        return problems


ConfigT = TypeVar("ConfigT", bound=StrategyConfig)


def _coerce(value: Any, annotation: Any) -> Any:
    """Convert one JSON value to the annotated type, or raise ValueError with a readable reason."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(value, options[0])
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("must be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            digits = value.strip().removeprefix("-")
            # isascii(): isdigit() also passes "²", which int() refuses with a message meant for programmers.
            if digits.isascii() and digits.isdigit():
                return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("must be a whole number")
    if annotation is Decimal:
        if isinstance(value, bool) or value is None:
            raise ValueError("must be a number")
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise ValueError("must be a number") from None
        if not number.is_finite():
            raise ValueError("must be a finite number")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError("must be text")
    raise ValueError(f"has an unsupported type {annotation!r}")


def parse_config(config_class: type[ConfigT], data: Mapping[str, Any] | None) -> ConfigT:
    """Build a config from JSON data; missing keys take defaults, anything wrong raises InvalidConfig."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidConfig({"config": "must be a JSON object"})
    hints = typing.get_type_hints(config_class)
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    errors: dict[str, str] = {}
    for unknown in sorted(set(data) - set(fields)):
        errors[unknown] = f"is not a setting of {config_class.__name__}; known: {', '.join(fields)}"
    values: dict[str, Any] = {}
    for name in fields:
        if name in data:
            try:
                values[name] = _coerce(data[name], hints[name])
            except ValueError as problem:
                errors[name] = str(problem)
    if errors:
        raise InvalidConfig(errors)
    return config_class(**values)


def config_to_json(config: StrategyConfig) -> dict[str, Any]:
    """The config as JSON: Decimals as strings so no digit is lost."""
    result: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        result[field.name] = str(value) if isinstance(value, Decimal) else value
    return result
