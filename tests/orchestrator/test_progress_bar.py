"""A backtest's progress bar: drawn again as each 1% of the candles is passed, whatever counts it is given."""

from __future__ import annotations

from orchestrator.progress_bar import ProgressBar


def test_the_bar_is_drawn_once_per_percent_passed_at_uneven_counts_and_full_at_the_last():
    bar = ProgressBar(45_031, width=20)
    # Counts as a run of one market reports them: every 100 candles and at due candles between.
    counts = sorted({*range(100, 45_031, 100), *range(7, 45_031, 313), 45_031})

    drawn = [(done, text) for done in counts if (text := bar.redraw(done)) is not None]

    assert len(drawn) == 101
    assert [done * 100 // 45_031 for done, _ in drawn] == list(range(101))
    assert drawn[-1] == (45_031, "[" + "#" * 20 + "]")
    assert all(len(text) == 22 and text.count("#") == 20 * done // 45_031 for done, text in drawn)


def test_no_bar_without_candles():
    assert ProgressBar(0).redraw(0) is None
