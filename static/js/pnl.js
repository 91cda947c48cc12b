// A strategy's P&L page: a candle chart of its market with its fills as markers and its indicator lines, its
// equity curve and drawdown (underwater) chart, all drawn with the vendored lightweight-charts from the data the
// page carries as JSON ([epoch seconds, ...] rows). Live: the page subscribes to the strategy's events on the
// desk websocket; after a burst of them it asks the server once for the same data and partial again (charts
// redrawn in place, the tables swapped), so a new fill shows as a marker and a table row without a reload.
(function () {
  "use strict";

  const RECONNECT_MS = 2000;
  const SETTLE_MS = 150; // several events arrive per candle: one refresh after the burst
  const LINE_COLORS = ["#f2c94c", "#bb86fc", "#56ccf2", "#6fcf97"];
  const UP = "#26a69a";
  const DOWN = "#ef5350";

  function newChart(element, height) {
    return window.deskChart(element, height);
  }

  // Entries point the way the position faces, exits are squares; both sit on the side of the bar the fill trades.
  function marker(fill) {
    const buy = fill.side === "buy";
    const entry = fill.intent === "open";
    const how = fill.trigger === "market" ? "" : " " + fill.trigger.replace("_", "-");
    return {
      time: fill.time, position: buy ? "belowBar" : "aboveBar", color: buy ? UP : DOWN,
      shape: entry ? (buy ? "arrowUp" : "arrowDown") : "square",
      text: (entry ? (buy ? "long" : "short") : "exit" + how) + " " + fill.price,
    };
  }

  function priceChart(element) {
    const chart = newChart(element, 360);
    const candles = chart.addSeries(LightweightCharts.CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
    });
    const markers = LightweightCharts.createSeriesMarkers(candles, []);
    const lines = new Map();

    function line(spec, index) {
      if (!lines.has(spec.key)) {
        // An oscillator gets a pane of its own below the candles (pane 1); a price line shares theirs.
        lines.set(spec.key, chart.addSeries(LightweightCharts.LineSeries, {
          color: LINE_COLORS[index % LINE_COLORS.length], lineWidth: 2, title: spec.key,
          priceLineVisible: false, lastValueVisible: true,
        }, spec.on_price ? 0 : 1));
      }
      return lines.get(spec.key);
    }

    return function draw(price) {
      candles.setData(price.candles.map(([time, open, high, low, close]) => ({ time, open, high, low, close })));
      price.lines.forEach(function (spec, index) {
        line(spec, index).setData(spec.points.map(([time, value]) => ({ time, value })));
      });
      markers.setMarkers(price.markers.map(marker));
      // What the chart holds, for people and tests to compare with the page's data attributes.
      element.dataset.drawnCandles = String(candles.data().length);
      element.dataset.drawnMarkers = String(markers.markers().length);
      element.dataset.drawnLines = Array.from(lines.keys()).filter((key) => lines.get(key).data().length).join(" ");
    };
  }

  function pointChart(element, type, options) {
    const series = newChart(element, 260).addSeries(type, options);
    return function draw(pairs) {
      series.setData(pairs.map(([time, value]) => ({ time, value })));
      element.dataset.drawnPoints = String(series.data().length);
    };
  }

  function follow(strategyId, refresh) {
    const status = document.getElementById("ws-status");
    let timer = null;

    function setStatus(state) {
      if (!status) return;
      status.dataset.state = state;
      status.textContent = state;
    }

    function connect(reconnected) {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const socket = new WebSocket(scheme + location.host + "/ws/events/");
      socket.addEventListener("open", function () {
        socket.send(JSON.stringify({ action: "subscribe", strategy_ids: [strategyId] }));
      });
      socket.addEventListener("message", function (frame) {
        const message = JSON.parse(frame.data);
        if (message.type === "subscribed") {
          setStatus("live");
          // Whatever happened while the socket was down is caught up with once.
          if (reconnected) refresh();
        } else if (message.type === "event" && message.event.strategy_id === strategyId) {
          clearTimeout(timer);
          timer = setTimeout(refresh, SETTLE_MS);
        } else if (message.type === "marks") {
          window.deskMarks(message);
        } else if (message.type === "error") {
          console.warn("desk websocket:", message.message);
        }
      });
      socket.addEventListener("close", function () {
        setStatus("reconnecting");
        setTimeout(function () { connect(true); }, RECONNECT_MS);
      });
    }

    connect(false);
  }

  function start() {
    const data = document.getElementById("pnl-charts");
    const live = document.getElementById("pnl-live");
    if (!data || !live || typeof LightweightCharts === "undefined") return;
    const charts = JSON.parse(data.textContent);
    const drawPrice = priceChart(document.getElementById("price-chart"));
    const drawEquity = pointChart(document.getElementById("equity-chart"), LightweightCharts.LineSeries,
      { color: "#4c9aff", lineWidth: 2, title: "equity" });
    const drawDrawdown = pointChart(document.getElementById("drawdown-chart"), LightweightCharts.AreaSeries, {
      lineColor: "#e5534b", topColor: "rgba(229, 83, 75, 0.1)", bottomColor: "rgba(229, 83, 75, 0.4)", title: "drawdown",
    });

    function draw(series) {
      drawPrice(series.price);
      drawEquity(series.equity);
      drawDrawdown(series.drawdown);
    }

    const liveUrl = live.dataset.liveUrl + location.search;
    let refreshes = 0;

    function refresh() {
      fetch(liveUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("P&L refresh answered " + response.status);
          return response.json();
        })
        .then(function (update) {
          draw(update.charts);
          document.getElementById("pnl-live").outerHTML = update.html;
          refreshes += 1;
          document.body.dataset.liveRefreshes = String(refreshes);
        })
        .catch(function (error) { console.warn(error); });
    }

    draw(charts);
    document.body.dataset.chartsDrawn = "true";
    follow(live.dataset.strategyId, refresh);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
