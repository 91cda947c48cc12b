"""tradeweb's ASGI application with timing probes, served by Daphne for `python -m benchmarks.switching --profile`.

Nothing of tradeweb changes: the probes wrap, in this process only, the points a switch passes (the HTTP request in
Daphne, the activate view, `set_active` and each SQL statement it runs, the publish to the channel layer, and the
consumer relaying the event), and write one JSON line per point to the file named by SWITCH_PROBE_LOG. Times are
`time.perf_counter()`, the system's monotonic clock on Linux, so they compare with the benchmark process's own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from functools import wraps

from tradeweb.asgi import application as tradeweb_application  # sets Django up

from django.db.backends.signals import connection_created  # noqa: E402

from tradeweb import urls  # noqa: E402
from tradeweb.desk import consumers, storage, views  # noqa: E402

_log = open(os.environ["SWITCH_PROBE_LOG"], "a", buffering=1)
_log_lock = threading.Lock()
_recording = threading.local()


def note(kind: str, **fields) -> None:
    line = json.dumps({"kind": kind, **fields})
    with _log_lock:
        _log.write(line + "\n")


def timed_statement(execute, sql, params, many, context):
    """Each statement the activate view runs in this thread: the view's phase, its first words (and whether it
    locks rows), its start and its wall time."""
    queries = getattr(_recording, "queries", None)
    if queries is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        text = " ".join(sql.split())
        head = text[:80] + (" ... FOR UPDATE" if " FOR UPDATE" in text else "")
        queries.append((_recording.phase, head, started, time.perf_counter() - started))


def install_statement_timer(sender, connection, **kwargs) -> None:
    if timed_statement not in connection.execute_wrappers:
        connection.execute_wrappers.append(timed_statement)


connection_created.connect(install_statement_timer)


def probe_set_active(set_active):
    @wraps(set_active)
    def probed(strategy_id, user, active):
        _recording.phase = "set_active"
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return set_active(strategy_id, user, active)
        finally:
            note("set_active", strategy_id=strategy_id, start=started, end=time.perf_counter(),
                 cpu_start=cpu, cpu_end=time.thread_time())
            _recording.phase = "answer"
    return probed


def probe_view(view):
    """The activate view with its decorators (login, permission, method): its statements phase by phase."""
    @wraps(view)
    def probed(request, strategy_id):
        _recording.queries, _recording.phase = [], "login and permission"
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return view(request, strategy_id)
        finally:
            note("view", strategy_id=strategy_id, start=started, end=time.perf_counter(), cpu_start=cpu,
                 cpu_end=time.thread_time(), queries=_recording.queries)
            _recording.queries = None
    return probed


def probe_send_messages(send_messages):
    @wraps(send_messages)
    def probed(messages):
        messages = list(messages)
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return send_messages(messages)
        finally:
            note("publish", types=[m["event"]["type"] for m in messages],
                 strategy_ids=[m["event"]["strategy_id"] for m in messages],
                 start=started, end=time.perf_counter(), cpu=time.thread_time() - cpu)
    return probed


def probe_desk_event(desk_event):
    @wraps(desk_event)
    async def probed(self, message):
        started = time.perf_counter()
        await desk_event(self, message)
        event = message["event"]
        if event["type"] == "STRATEGY_ACTIVATED":
            note("consumer", strategy_id=event["strategy_id"], start=started, end=time.perf_counter())
    return probed


# An experiment, not a setting of tradeweb: how long a thread waits for the GIL while another computes.
if os.environ.get("PROBE_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["PROBE_SWITCH_INTERVAL"]))

views.set_active = probe_set_active(views.set_active)
# The web process loads its URLs at start (tradeweb.asgi), so the activate view is wrapped where they hold it.
for pattern in urls.urlpatterns:
    if getattr(pattern, "name", None) == "strategy_activate":
        pattern.callback = probe_view(pattern.callback)
storage.send_messages = probe_send_messages(storage.send_messages)
consumers.EventConsumer.desk_event = probe_desk_event(consumers.EventConsumer.desk_event)


async def application(scope, receive, send):
    """tradeweb's application; an HTTP POST notes when Daphne handed it over and when its answer started."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return await tradeweb_application(scope, receive, send)
    started = time.perf_counter()
    answered = {}

    async def probed_send(message):
        if message["type"] == "http.response.start":
            answered["at"] = time.perf_counter()
        await send(message)

    await tradeweb_application(scope, receive, probed_send)
    note("request", path=scope["path"], start=started, answer=answered.get("at"), end=time.perf_counter())
