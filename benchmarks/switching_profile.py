"""Where the time of a switch goes: `python -m benchmarks.switching --profile`.

The switching benchmark's switches again (feed running, then idle), with Daphne serving
`benchmarks.switching_probe:application`; the probe's notes (perf_counter, the system's monotonic clock, as the
client's) are matched to each switch the client timed and cut it into stages. Printed, not written to the docs.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from benchmarks import live_stack
from benchmarks.desk_load import cores
from benchmarks.live_stack import NAME, BenchmarkFailed
from benchmarks.switching import Switch, measure, percentile


def profile() -> None:
    """Print where the time of a switch goes: the same switches, with Daphne and the workers running the probes,
    whose notes are matched to each switch the client timed."""
    live_stack.configure()
    live_stack.check_services()
    live_stack.migrate_fresh()
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-probes-") as directory:
        probes = Path(directory)
        try:
            measured = measure(probes)
        finally:
            live_stack.empty_desk()
        notes = read_notes(probes / "daphne.jsonl")
        batches = read_notes(probes / "workers.jsonl")
    for condition, samples, phase in (("feed running", measured.busy, "busy"), ("idle desk", measured.idle, "idle")):
        print(f"\n{condition}: {len(samples)} switches; CPU meanwhile {cores(measured.cpu[phase])}")
        print("  ms (p50 / p95 / max)")
        stages, statements = breakdown(samples, notes)
        width = max(len(name) for name in stages)
        for name, values in stages.items():
            print(f"  {name.ljust(width)}  {stats_ms(values)}")
        print("  statements of the activate view, by phase, ms (p50 / p95 / max), how many per switch:")
        for sql, values in statements.items():
            print(f"    {stats_ms(values)}  x{len(values) / len(samples):.1f}  {sql}")
        print(lock_holders(samples, notes, batches))
    print(f"\ndeadlocks PostgreSQL detected during the run: {measured.deadlocks}")


def read_notes(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lock_holders(samples: list[Switch], notes: list[dict], batches: list[dict]) -> str:
    """What the workers' batch transactions did while the switches ran: how long they held the market's rows, how
    many rebuilt orchestrators, and whether a switch that waited for a row lock waited for such a batch."""
    window = [b for b in batches if samples[0].started <= b["start"] <= samples[-1].received_at]
    if not window:
        return "  no worker batch ran meanwhile"
    lines = [f"  worker batches meanwhile: {len(window)}, each holding the market's rows, ms (p50 / p95 / max): "
             f"{stats_ms([b['end'] - b['start'] for b in window])}"]
    for kind, label in ((True, "warm-up on stored candles"), (False, "from the snapshot")):
        built = [b for b in window if any(x["warm_up"] is kind for x in b["builds"])]
        if built:
            seconds = [sum(x["seconds"] for x in b["builds"] if x["warm_up"] is kind) for b in built]
            count = sum(1 for b in built for x in b["builds"] if x["warm_up"] is kind)
            lines.append(f"    {len(built)} of them rebuilt {count} orchestrators ({label}), ms per batch: "
                         f"{stats_ms(seconds)}; those batches held the rows {stats_ms([b['end'] - b['start'] for b in built])}")
    waits = []
    for sample in samples:
        view = next(n for n in notes if n["kind"] == "view" and n["strategy_id"] == sample.strategy_id
                    and sample.started <= n["start"] <= sample.received_at + 1)
        for phase, sql, started, seconds in view["queries"]:
            if sql.endswith("FOR UPDATE") and seconds > 0.005:
                holder = [b for b in window if b["start"] <= started <= b["end"]]
                waits.append((seconds, holder[0] if holder else None))
    if waits:
        during = [w for w in waits if w[1] is not None]
        warm = [w for w in during if any(x["warm_up"] for x in w[1]["builds"])]
        lines.append(f"    row locks the view waited over 5 ms for: {len(waits)}, ms {stats_ms([w[0] for w in waits])}; "
                     f"{len(during)} while a batch held the rows, {len(warm)} of those batches warming up an orchestrator")
    return "\n".join(lines)


def stats_ms(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1000:7.1f} {percentile(values, 0.95) * 1000:7.1f} "
            f"{max(values) * 1000:7.1f}")


def breakdown(samples: list[Switch], notes: list[dict]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each switch's time cut at the probes' notes, stage by stage (seconds), and the wall time of each kind of
    statement the activate view ran, by phase."""
    def note(kind: str, sample: Switch, **match) -> dict:
        found = [n for n in notes if n["kind"] == kind and sample.started <= n["start"] <= sample.received_at + 1
                 and all(n.get(k) == v for k, v in match.items())]
        if not found:
            raise BenchmarkFailed(f"no {kind} note for the switch to {sample.strategy_id}")
        return found[0]

    stages: dict[str, list[float]] = {}
    statements: dict[str, list[float]] = {}
    for sample in samples:
        request = note("request", sample, path=f"/strategies/{sample.strategy_id}/activate/")
        view = note("view", sample, strategy_id=sample.strategy_id)
        switch = note("set_active", sample, strategy_id=sample.strategy_id)
        publish = next(n for n in notes if n["kind"] == "publish" and switch["start"] <= n["start"] <= switch["end"]
                       and sample.strategy_id in n["strategy_ids"])
        relay = note("consumer", sample, strategy_id=sample.strategy_id)
        queries = [q for q in view["queries"] if q[0] == "set_active"]
        locks = sum(q[3] for q in queries if q[1].endswith("FOR UPDATE"))
        other = sum(q[3] for q in queries if not q[1].endswith("FOR UPDATE"))
        last_statement = max(q[2] + q[3] for q in queries)
        for name, value in (
            ("client to Daphne's application", request["start"] - sample.started),
            ("application to view: middleware, session, user", view["start"] - request["start"]),
            ("view to set_active: login and permission checks", switch["start"] - view["start"]),
            ("  of which CPU time of the view's thread", switch["cpu_start"] - view["cpu_start"]),
            ("set_active: SELECT ... FOR UPDATE (lock waits)", locks),
            ("set_active: other statements", other),
            ("set_active: Python between statements", last_statement - switch["start"] - locks - other),
            ("set_active: commit", publish["start"] - last_statement),
            ("publish: group_send of the switch's events", publish["end"] - publish["start"]),
            ("set_active, CPU time of its thread", switch["cpu_end"] - switch["cpu_start"]),
            ("group_send start to consumer", relay["start"] - publish["start"]),
            ("consumer: render and send", relay["end"] - relay["start"]),
            ("consumer to client", sample.received_at - relay["end"]),
            ("total: POST to event at the client", sample.event),
            ("view after set_active: its answer", view["end"] - switch["end"]),
            ("  of which CPU time of the view's thread", view["cpu_end"] - switch["cpu_end"]),
            ("view, CPU time of its thread", view["cpu_end"] - view["cpu_start"]),
            ("answer start to client", sample.answered_at - request["answer"]),
            ("total: POST to answer at the client", sample.answered),
        ):
            stages.setdefault(name, []).append(value)
        for phase, sql, _, seconds in view["queries"]:
            statements.setdefault(f"{phase}: {sql}", []).append(seconds)
    return stages, statements
