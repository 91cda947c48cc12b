// Live desk: one websocket per page, subscribed to the strategies the feed shows.
// Event rows arrive pre-rendered (the same partial the server renders on page load); a strategy's
// card and activity tables are refreshed through htmx when its events arrive.
//
// Each strategy's events are shown once and in the order of their sequence. A page that missed some
// asks the server to replay them from the stored events: after its socket dropped (it reconnects by
// itself, with backoff), and when an event's sequence jumps (the channel layer is Redis pub/sub, so an
// event published while Redis was away never arrives).
(function () {
  "use strict";

  const MAX_ROWS = 200;
  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 30000;
  const MAX_IDS_PER_MESSAGE = 200;

  function start() {
    const idsScript = document.getElementById("strategy-ids");
    if (!idsScript) return;
    const allIds = JSON.parse(idsScript.textContent);
    const filter = document.getElementById("event-filter");
    const status = document.getElementById("ws-status");
    const refreshTimers = new Map();
    // strategy id -> {last: last sequence shown in order (null: not known yet), held: events that came
    // after a gap, by sequence, replaying: a replay was asked, covers: the highest sequence held then}
    const streams = new Map();
    let socket = null;
    let subscribed = [];
    let attempts = 0;
    let listRequests = 0;

    // The values of the filter's checked boxes named `name`, or null when all are checked (no filter).
    function checked(name) {
      if (!filter) return null;
      const boxes = Array.from(filter.querySelectorAll('input[name="' + name + '"]'));
      const on = boxes.filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
      return on.length === boxes.length ? null : on;
    }

    function chosenIds() {
      const ids = checked("strategy_id");
      return ids === null ? allIds : ids;
    }

    function setStatus(state, title) {
      if (!status) return;
      status.dataset.state = state;
      status.textContent = state;
      status.title = title || "";
    }

    function send(message) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(message));
      return true;
    }

    // Every strategy on the page: its events refresh its parts and its marks move its figures, whatever the
    // feed shows; the feed's rows are those of the chosen strategies (the streams).
    function resubscribe() {
      const wanted = allIds;
      const dropped = subscribed.filter(function (id) { return !wanted.includes(id); });
      const added = wanted.filter(function (id) { return !subscribed.includes(id); });
      for (let i = 0; i < dropped.length; i += MAX_IDS_PER_MESSAGE) {
        send({ action: "unsubscribe", strategy_ids: dropped.slice(i, i + MAX_IDS_PER_MESSAGE) });
      }
      // One subscribe even with nothing to add: its answer says the connection is live.
      for (let i = 0; i === 0 || i < added.length; i += MAX_IDS_PER_MESSAGE) {
        send({ action: "subscribe", strategy_ids: added.slice(i, i + MAX_IDS_PER_MESSAGE) });
      }
      subscribed = wanted;
    }

    // Where each chosen strategy's stream goes on from: the sequences the list was read after, or the
    // newest row shown if that is later.
    function resetStreams() {
      const list = document.getElementById("event-list");
      const known = list && list.dataset.sequences ? JSON.parse(list.dataset.sequences) : {};
      streams.clear();
      chosenIds().forEach(function (id) {
        let last = id in known ? known[id] : null;
        if (list) {
          list.querySelectorAll("li[data-sequence]").forEach(function (row) {
            if (row.dataset.strategyId !== id) return;
            const sequence = Number(row.dataset.sequence);
            if (last === null || sequence > last) last = sequence;
          });
        }
        streams.set(id, { last: last, held: new Map(), replaying: false, covers: 0 });
      });
    }

    // Ask for the stored events after the last shown of each strategy (none already asked for).
    function askReplay(ids) {
      const due = ids.filter(function (id) {
        const stream = streams.get(id);
        return stream && !stream.replaying && stream.last !== null;
      });
      for (let i = 0; i < due.length; i += MAX_IDS_PER_MESSAGE) {
        const chunk = due.slice(i, i + MAX_IDS_PER_MESSAGE);
        const after = {};
        chunk.forEach(function (id) { after[id] = streams.get(id).last; });
        if (!send({ action: "replay", after: after })) return;
        chunk.forEach(function (id) {
          const stream = streams.get(id);
          stream.replaying = true;
          stream.covers = Math.max(stream.last, ...stream.held.keys());
        });
      }
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

    // A row in the feed, unless the filter hides its kind (or, with strategies picked, system events).
    function show(message) {
      const list = document.getElementById("event-list");
      if (!list) return;
      const template = document.createElement("template");
      template.innerHTML = message.html.trim();
      const row = template.content.firstElementChild;
      const kinds = checked("kind");
      if (kinds !== null && !kinds.includes(row.dataset.kind)) return;
      if (!message.event.strategy_id && checked("strategy_id") !== null) return;
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      list.prepend(row);
      while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
    }

    function advance(stream, message) {
      stream.last = message.event.sequence;
      show(message);
      refreshParts(message.event.strategy_id);
    }

    // An event, live or replayed: shown if it is the next of its strategy, held if some are missing
    // before it (and those asked for), dropped if it was shown already.
    function receive(message) {
      const event = message.event;
      if (!event.strategy_id) {
        show(message);
        return;
      }
      const stream = streams.get(event.strategy_id);
      if (!stream) {
        refreshParts(event.strategy_id);
        return;
      }
      if (stream.last !== null && event.sequence <= stream.last) return;
      if (stream.last !== null && event.sequence > stream.last + 1) {
        stream.held.set(event.sequence, message);
        askReplay([event.strategy_id]);
        return;
      }
      advance(stream, message);
      while (stream.held.has(stream.last + 1)) {
        const next = stream.held.get(stream.last + 1);
        stream.held.delete(stream.last + 1);
        advance(stream, next);
      }
      stream.held.forEach(function (_, sequence) { if (sequence <= stream.last) stream.held.delete(sequence); });
    }

    function replayed(message) {
      message.events.forEach(receive);
      message.strategy_ids.forEach(function (id) {
        const stream = streams.get(id);
        if (!stream) return;
        stream.replaying = false;
        if (message.more.includes(id)) {
          askReplay([id]);
        } else if (stream.held.size) {
          if (Math.max(...stream.held.keys()) > stream.covers) {
            // Held events newer than the request: what is missing before them is stored now.
            askReplay([id]);
          } else {
            // The store has no more before them: show them in order rather than wait for ever.
            Array.from(stream.held.keys()).sort(function (a, b) { return a - b; }).forEach(function (sequence) {
              advance(stream, stream.held.get(sequence));
            });
            stream.held.clear();
          }
        }
      });
    }

    function replaceList(html) {
      const list = document.getElementById("event-list");
      if (!list) return;
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      list.replaceWith(template.content.firstElementChild);
    }

    // The feed's filter is remembered in this browser, so a reload (or the next visit) shows the same feed.
    const FILTER_KEY = "tradeweb.feedFilter";

    function rememberFilter() {
      try {
        localStorage.setItem(FILTER_KEY, JSON.stringify({ strategy_id: checked("strategy_id"), kind: checked("kind") }));
      } catch (error) { /* storage refused (private mode, quota): the filter lasts as long as the page */ }
    }

    // Check the boxes as remembered; true when that is not "everything" (the list must then be fetched).
    function restoreFilter() {
      let saved = null;
      try { saved = JSON.parse(localStorage.getItem(FILTER_KEY) || "null"); } catch (error) { saved = null; }
      if (!saved || typeof saved !== "object") return false;
      let narrowed = false;
      ["strategy_id", "kind"].forEach(function (name) {
        const values = saved[name];
        if (!Array.isArray(values)) return;
        filter.querySelectorAll('input[name="' + name + '"]').forEach(function (box) {
          box.checked = values.includes(box.value);
          narrowed = narrowed || !box.checked;
        });
      });
      return narrowed;
    }

    // A new filter: the server renders the list it picks, and the live stream goes on from that list.
    function applyFilter() {
      rememberFilter();
      resubscribe();
      const request = ++listRequests;
      const ids = checked("strategy_id");
      const kinds = checked("kind");
      if ((ids && !ids.length) || (kinds && !kinds.length)) {
        streams.clear();
        replaceList('<ol id="event-list" class="events"><li class="empty">Pick at least one strategy and one kind.</li></ol>');
        return;
      }
      const query = new URLSearchParams();
      (ids || []).forEach(function (id) { query.append("strategy_id", id); });
      (kinds || []).forEach(function (kind) { query.append("kind", kind); });
      fetch(filter.action + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          if (request !== listRequests) return;  // a newer filter's list is on its way
          replaceList(html);
          resetStreams();
          askReplay(chosenIds());
        })
        .catch(function (error) { console.warn("desk feed:", error); });
    }

    function reconnectDelay() {
      // Exponential backoff, capped, with jitter: pages dropped together do not all come back at once.
      const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * Math.pow(2, attempts));
      attempts += 1;
      return ceiling / 2 + Math.random() * ceiling / 2;
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/ws/events/");
      socket.addEventListener("open", function () {
        subscribed = [];
        resubscribe();
        streams.forEach(function (stream) { stream.replaying = false; });
        askReplay(Array.from(streams.keys()));
      });
      socket.addEventListener("message", function (frame) {
        const message = JSON.parse(frame.data);
        if (message.type === "event") receive(message);
        else if (message.type === "replay") replayed(message);
        else if (message.type === "marks") window.deskMarks(message);
        else if (message.type === "subscribed") {
          attempts = 0;
          setStatus("live");
        } else if (message.type === "error") console.warn("desk websocket:", message.message);
      });
      socket.addEventListener("close", function () {
        const delay = reconnectDelay();
        setStatus("reconnecting", "next try in " + Math.round(delay / 100) / 10 + " s");
        setTimeout(connect, delay);
      });
    }

    if (filter) {
      filter.addEventListener("change", applyFilter);
      filter.addEventListener("submit", function (submitted) { submitted.preventDefault(); });
      filter.querySelectorAll("[data-check-all]").forEach(function (button) {
        button.addEventListener("click", function () {
          filter.querySelectorAll('input[name="' + button.dataset.checkAll + '"]').forEach(function (box) { box.checked = true; });
          applyFilter();
        });
      });
    }
    // A switch's answer names the strategy it switched; its events refresh the same parts, so both make one refresh.
    document.body.addEventListener("strategy-switched", function (switched) {
      refreshParts(switched.detail.strategy_id);
    });
    resetStreams();
    if (filter && restoreFilter()) applyFilter();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
