// Live desk: one websocket per page, subscribed to the strategies on screen.
// Event rows arrive pre-rendered (the same partial the server renders on page load);
// a strategy's card and activity tables are refreshed through htmx when its events arrive.
(function () {
  "use strict";

  const MAX_ROWS = 200;
  const RECONNECT_MS = 2000;

  function start() {
    const idsScript = document.getElementById("strategy-ids");
    if (!idsScript) return;
    const allIds = JSON.parse(idsScript.textContent);
    const filter = document.getElementById("event-filter");
    const status = document.getElementById("ws-status");
    const refreshTimers = new Map();
    let socket = null;
    let subscribed = [];

    function wanted() {
      return filter && filter.value ? [filter.value] : allIds;
    }

    function setStatus(state) {
      if (!status) return;
      status.dataset.state = state;
      status.textContent = state;
    }

    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    }

    function resubscribe() {
      if (subscribed.length) send({ action: "unsubscribe", strategy_ids: subscribed });
      subscribed = wanted();
      send({ action: "subscribe", strategy_ids: subscribed });
    }

    // Parts of the page marked data-live-strategy reload from their data-live-url when that
    // strategy has news; several events arrive per candle, so one reload after the burst.
    function refreshParts(strategyId) {
      if (!window.htmx) return;
      clearTimeout(refreshTimers.get(strategyId));
      refreshTimers.set(strategyId, setTimeout(function () {
        document.querySelectorAll("[data-live-strategy]").forEach(function (part) {
          if (part.dataset.liveStrategy !== strategyId) return;
          htmx.ajax("GET", part.dataset.liveUrl, { target: part, swap: "outerHTML" });
        });
      }, 150));
    }

    function showEvent(message) {
      const list = document.getElementById("event-list");
      if (!list) return;
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      list.insertAdjacentHTML("afterbegin", message.html);
      while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
      if (message.event.strategy_id) refreshParts(message.event.strategy_id);
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/ws/events/");
      socket.addEventListener("open", function () {
        subscribed = [];
        resubscribe();
      });
      socket.addEventListener("message", function (frame) {
        const message = JSON.parse(frame.data);
        if (message.type === "event") showEvent(message);
        else if (message.type === "subscribed") setStatus("live");
        else if (message.type === "error") console.warn("desk websocket:", message.message);
      });
      socket.addEventListener("close", function () {
        setStatus("reconnecting");
        setTimeout(connect, RECONNECT_MS);
      });
    }

    if (filter) filter.addEventListener("change", resubscribe);
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
