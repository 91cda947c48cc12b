"""Everything a strategy's derived history holds, as plain values: two histories hold the same when these are equal
(Decimals by their text, so that a value read back is the same Decimal, not only an equal one)."""

from __future__ import annotations


def history_state(history) -> dict:
    """The history's marks, fills, trades, drawdown and replayed book, to compare."""
    replay, drawdown = history.replay, history.drawdown
    return {
        "identity": history.identity,
        "begin": history.begin,
        "through": history.through,
        "times": history.times,
        "equities": [str(equity) for equity in history.equities],
        "levels": history.levels,
        "day_ends": history.day_ends,
        "underwater": history.underwater,
        "peak_level": history.peak_level,
        "drawdown": (str(drawdown.peak), drawdown.peak_time, str(drawdown.trough), drawdown.deepest,
                     drawdown.below_until, drawdown.longest),
        "fill_times": history.fill_times,
        "fees_paid": [str(fees) for fees in history.fees_paid],
        "trades": [(t.opened_at, t.closed_at, str(t.pnl), str(t.fees)) for t in history.trades],
        "closed_times": history.closed_times,
        "exit_reasons": history.exit_reasons,
        "position_pks": history.position_pks,
        "replay": (replay.symbol, str(replay.capital), str(replay.held), str(replay.constant), replay.closed),
        "book": (replay.book.strategy_id, str(replay.book.realized_pnl), replay.book.held),
    }
