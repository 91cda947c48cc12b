"""docs/benchmarks.md, one section per benchmark: the core's first (the title and its table, before any `## `
heading), then the live path's, the switching's, the P&L page's and the dashboard's. Each benchmark replaces its own section and keeps the others,
so one run alone (`python -m benchmarks.live_path`) leaves the other figures in place."""

from __future__ import annotations

import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
CORE = ""  # the core's part has no `## ` heading of its own
ORDER = (CORE, "## Live path", "## Switching", "## P&L page", "## Dashboard", "## Candle to browser")


def sections(text: str) -> dict[str, str]:
    """The document's parts by heading (CORE for what comes before the first `## ` line), in their order."""
    parts: dict[str, list[str]] = {CORE: []}
    heading = CORE
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line.rstrip()
            parts[heading] = []
        parts[heading].append(line)
    return {heading: "\n".join(lines).strip("\n") for heading, lines in parts.items() if any(lines)}


def write_section(heading: str, text: str) -> None:
    """Put `text` (which starts with `heading`, unless it is the core's part) in docs/benchmarks.md in its place,
    replacing an older version of it; a section this module does not know is kept after the known ones."""
    current = sections(DOCS.read_text()) if DOCS.exists() else {}
    current[heading] = text.strip("\n")
    if CORE not in current:
        current[CORE] = "# Benchmarks"
    known = [current[h] for h in ORDER if h in current]
    others = [part for h, part in current.items() if h not in ORDER]
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text("\n\n".join(known + others) + "\n")


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A benchmark's figures on the terminal, names aligned."""
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name.ljust(width)}  {value}" for name, value in rows))


def section(heading: str, about: str, conditions: str, rows: list[tuple[str, str]]) -> str:
    """A benchmark's part of docs/benchmarks.md: its heading, what it measures and how, on what, and its figures."""
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return (
        f"{heading}\n\n{textwrap.fill(about, 110)}\n\n{textwrap.fill(conditions, 110)}\n\n"
        "| figure | value |\n| --- | --- |\n" + table + "\n"
    )
