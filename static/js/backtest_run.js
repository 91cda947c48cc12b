// A backtest's page while it runs: follows the run over the desk's websocket and swaps in its progress partial
// (rendered by the server, the same partial as on page load) as the worker reports; when the run is done it opens
// the results page. A run that failed or was cancelled stays on this page with how it ended.
(function () {
  "use strict";

  const RECONNECT_MS = 2000;
  const ENDED = ["done", "failed", "cancelled"];

  function start() {
    const section = document.getElementById("backtest-run");
    if (!section) return;
    const runId = Number(section.dataset.runId);
    const resultsUrl = section.dataset.resultsUrl;
    const status = document.getElementById("ws-status");
    let ended = ENDED.includes(document.getElementById("backtest-progress").dataset.status);

    function setStatus(state) {
      if (!status) return;
      status.dataset.state = state;
      status.textContent = state;
    }

    function show(message) {
      document.getElementById("backtest-progress").outerHTML = message.html;
      if (window.htmx) htmx.process(document.getElementById("backtest-progress"));
      ended = ENDED.includes(message.progress.status);
      if (message.progress.status === "done") location.assign(resultsUrl);
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const socket = new WebSocket(scheme + location.host + "/ws/events/");
      socket.addEventListener("open", function () {
        socket.send(JSON.stringify({ action: "follow_backtest", run_id: runId }));
      });
      socket.addEventListener("message", function (frame) {
        const message = JSON.parse(frame.data);
        if (message.type === "backtest" && message.progress.run_id === runId) {
          setStatus("live");
          show(message);
          if (ended) socket.close();
        } else if (message.type === "error") {
          console.warn("desk websocket:", message.message);
        }
      });
      socket.addEventListener("close", function () {
        if (ended) {
          setStatus("offline");
          return;
        }
        setStatus("reconnecting");
        setTimeout(connect, RECONNECT_MS);
      });
    }

    if (!ended) connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
