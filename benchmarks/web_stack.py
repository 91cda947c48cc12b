"""The web side of the stack as the benchmarks drive it: Daphne started as the Procfile starts it, and a user's
browser as the desk sees it (an HTTP session with its cookies and CSRF token, htmx's headers, the admin's forms, and
the dashboard's event websocket)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from benchmarks.live_stack import NAME, BenchmarkFailed

ROOT = Path(__file__).resolve().parent.parent
# Over plain HTTP on 127.0.0.1: the HTTPS defaults that come with DEBUG off are switched off by their variables.
PLAIN_HTTP = {
    "SECURE_SSL_REDIRECT": "0", "SECURE_HSTS_SECONDS": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
}
NO_PROXY = {"http": "", "https": ""}  # 127.0.0.1 only: a proxy from the environment must not be used


class Daphne:
    """The web process started as the Procfile starts it (`python -m tradeweb.server`), on a free port, with this
    process's environment (and `extra_env`: PLAIN_HTTP for plain HTTP)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix=f"{NAME}-daphne-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, extra_env: dict[str, str] | None = None, application: str = "tradeweb.asgi:application",
              timeout: float = 60) -> None:
        import requests

        env = dict(os.environ, **(extra_env or {}))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tradeweb.server", "-b", "127.0.0.1", "-p", str(self.port), application],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed(f"Daphne did not answer on {self.url} within {timeout:.0f} s:\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/accounts/login/", timeout=2, proxies=NO_PROXY).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group if it is still there after 10 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process = None

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else "(no log)"


@contextmanager
def running_daphne(extra_env: dict[str, str] | None = None,
                   application: str = "tradeweb.asgi:application") -> Iterator[Daphne]:
    daphne = Daphne()
    try:
        daphne.start(extra_env, application)
        yield daphne
    finally:
        daphne.stop()
        daphne.log.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FormFields(HTMLParser):
    """What a browser submits from the form with the given id: its inputs (checked boxes only, no buttons), the
    selected option of each select (else its first), and its text areas."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = attr.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and "name" in attr:
            kind = attr.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attr:
                return
            self.fields[attr["name"]] = attr.get("value", "on" if kind in ("checkbox", "radio") else "")
        elif tag == "select" and "name" in attr:
            self._select, self._first_option = attr["name"], None
        elif tag == "option" and self._select is not None:
            if self._first_option is None:
                self._first_option = attr.get("value", "")
            if "selected" in attr:
                self.fields[self._select] = attr.get("value", "")
        elif tag == "textarea" and "name" in attr:
            self._textarea = attr["name"]
            self.fields[self._textarea] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            self.fields.setdefault(self._select, self._first_option or "")
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # A browser drops the newline that starts a text area's content (Django writes one).
            value = self.fields[self._textarea]
            self.fields[self._textarea] = value[1:] if value.startswith("\n") else value
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.fields[self._textarea] += data


class Browser:
    """A logged-in user's browser as the desk sees it: one keep-alive HTTP connection with the session and CSRF
    cookies, htmx's headers on a control's POST, and the CSRF token the page carries."""

    def __init__(self, base_url: str) -> None:
        import requests

        self.base = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.page_token = ""

    def login(self, username: str, password: str) -> None:
        page = self.session.get(f"{self.base}/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if token is None:
            raise BenchmarkFailed(f"the login page carries no CSRF token: HTTP {page.status_code}")
        fields = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password, "next": ""}
        answer = self.session.post(f"{self.base}/accounts/login/", data=fields, headers=self.origin("/accounts/login/"),
                                   allow_redirects=False)
        if answer.status_code != 302 or "sessionid" not in self.session.cookies:
            raise BenchmarkFailed(f"{username} could not log in: HTTP {answer.status_code}")

    def open_dashboard(self) -> None:
        """Load the dashboard, as the page the user switches from; htmx sends its CSRF token (hx-headers)."""
        page = self.session.get(f"{self.base}/")
        found = re.search(r'"X-CSRFToken": "([^"]+)"', page.text)
        if page.status_code != 200 or not found:
            raise BenchmarkFailed(f"the dashboard did not load with a CSRF token: HTTP {page.status_code}")
        self.page_token = found.group(1)

    def switch_to(self, strategy_id: str) -> None:
        """Press "Switch to this" on the strategy's card (confirmed): htmx POSTs the card's form, and the answer is
        no content with a trigger naming the strategy (the page then refreshes its card, see `refresh_card`)."""
        answer = self.session.post(
            f"{self.base}/strategies/{strategy_id}/activate/",
            data={"csrfmiddlewaretoken": self.page_token},
            headers={
                **self.origin("/"), "HX-Request": "true", "HX-Current-URL": f"{self.base}/",
                "HX-Target": f"card-{strategy_id}", "X-CSRFToken": self.page_token,
            },
        )
        if answer.status_code != 204 or strategy_id not in answer.headers.get("HX-Trigger", ""):
            raise BenchmarkFailed(f"switching to {strategy_id} answered HTTP {answer.status_code}")

    def refresh_card(self, strategy_id: str) -> None:
        """GET the strategy's card, as the page does once its events (or a switch's answer) came in."""
        answer = self.session.get(f"{self.base}/strategies/{strategy_id}/card/", headers={"HX-Request": "true"})
        if answer.status_code != 200:
            raise BenchmarkFailed(f"the card of {strategy_id} answered HTTP {answer.status_code}")

    def change_form(self, pk: int) -> dict[str, str]:
        """The admin's change form of a strategy, as its fields would be submitted unchanged."""
        page = self.session.get(f"{self.base}{change_path(pk)}")
        if page.status_code != 200:
            raise BenchmarkFailed(f"the admin's change form answered HTTP {page.status_code}")
        return form_fields(page.text, "strategy_form")

    def save_change_form(self, pk: int, fields: dict[str, str]) -> None:
        """Press "Save" on the change form."""
        answer = self.session.post(f"{self.base}{change_path(pk)}", data={**fields, "_save": "Save"},
                                   headers=self.origin(change_path(pk)), allow_redirects=False)
        if answer.status_code != 302:
            errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', answer.text, re.S)
            raise BenchmarkFailed(f"the admin did not save the config: HTTP {answer.status_code} {errors}")

    def origin(self, path: str) -> dict[str, str]:
        """Headers a browser sends with a POST from one of the site's pages."""
        return {"Origin": self.base, "Referer": f"{self.base}{path}"}

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.session.cookies.items())


def change_path(pk: int) -> str:
    return f"/admin/desk/strategy/{pk}/change/"


def form_fields(page: str, form_id: str) -> dict[str, str]:
    """The fields of the page's form `form_id`, as a browser submits them."""
    parser = FormFields(form_id)
    parser.feed(page)
    if "csrfmiddlewaretoken" not in parser.fields:
        raise BenchmarkFailed(f"no form {form_id!r} with a CSRF token on the page")
    return parser.fields


class EventSocket:
    """The dashboard's websocket, subscribed to every strategy on the page; a thread reads it and notes when each
    STRATEGY_ACTIVATED event arrived (perf_counter, taken before the frame is parsed)."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.activations: queue.Queue[tuple[float, str]] = queue.Queue()
        self.events = 0
        self.reader = threading.Thread(target=self._read, name="event-socket", daemon=True)

    def subscribe(self, strategy_ids: list[str]) -> None:
        """Subscribe as the dashboard does, then start reading."""
        self.connection.send(json.dumps({"action": "subscribe", "strategy_ids": strategy_ids}))
        answer = json.loads(self.connection.recv(timeout=10))
        if answer.get("type") != "subscribed" or sorted(answer["strategy_ids"]) != sorted(strategy_ids):
            raise BenchmarkFailed(f"the websocket did not subscribe: {answer}")
        self.reader.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for frame in self.connection:
                received = time.perf_counter()
                message = json.loads(frame)
                if message.get("type") != "event":
                    continue
                self.events += 1
                if message["event"]["type"] == "STRATEGY_ACTIVATED":
                    self.activations.put((received, message["event"]["strategy_id"]))
        except ConnectionClosed:
            pass

    def activated(self, strategy_id: str, timeout: float = 10) -> float:
        """When the next STRATEGY_ACTIVATED event of `strategy_id` arrived (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                received, sid = self.activations.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkFailed(f"no STRATEGY_ACTIVATED event of {strategy_id} within {timeout:.0f} s") from None
            if sid == strategy_id:
                return received

    def forget(self) -> None:
        """Drop activations noted so far."""
        while not self.activations.empty():
            self.activations.get_nowait()


@contextmanager
def event_socket(browser: Browser, strategy_ids: list[str]) -> Iterator[EventSocket]:
    """The browser's websocket (its session cookie, the page's origin), subscribed to `strategy_ids`."""
    from websockets.sync.client import connect

    url = browser.base.replace("http://", "ws://") + "/ws/events/"
    with connect(url, origin=browser.base, proxy=None, additional_headers={"Cookie": browser.cookie_header()}) as ws:
        events = EventSocket(ws)
        events.subscribe(strategy_ids)
        yield events
    events.reader.join(timeout=5)
