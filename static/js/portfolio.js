// The dashboard's portfolio: the combined equity chart (every strategy's equity summed at each quarter-hour of the
// last day), drawn with the vendored lightweight-charts from the series the table's partial carries as JSON in
// its data-chart attribute ([epoch seconds, value]); and the table kept current without polling: when strategy cards are swapped (their
// strategy had news over the websocket, or a control was used), the table is fetched again once, and the chart
// redrawn from it.
(function () {
  "use strict";

  const REFRESH_AFTER_MS = 1000;
  let series = null;
  let chart = null;
  let pending = null;

  function draw() {
    const table = document.getElementById("portfolio");
    const element = document.getElementById("combined-chart");
    if (!table || !element || typeof LightweightCharts === "undefined") return;
    const first = series === null;
    if (first) {
      chart = window.deskChart(element, 200);
      series = chart.addSeries(LightweightCharts.LineSeries, { color: "#4c9aff", lineWidth: 2, title: "combined equity" });
    }
    series.setData(JSON.parse(table.dataset.chart).map(([time, value]) => ({ time, value })));
    if (first) chart.timeScale().fitContent();
    // What the chart holds, for people and tests to compare with the page's data-points and the table's totals.
    const drawn = series.data();
    element.dataset.drawnPoints = String(drawn.length);
    element.dataset.drawnLast = drawn.length ? String(drawn[drawn.length - 1].value) : "";
  }

  // Several cards change per candle: one fetch of the table a moment after the first, not one per card.
  function refreshSoon() {
    if (pending !== null || !window.htmx) return;
    pending = setTimeout(function () {
      pending = null;
      const table = document.getElementById("portfolio");
      if (table) htmx.ajax("GET", table.dataset.liveUrl, { target: table, swap: "outerHTML" });
    }, REFRESH_AFTER_MS);
  }

  function start() {
    draw();
    const section = document.querySelector("section.portfolio");
    const slots = document.querySelector(".slots");
    if (!section || !slots) return;
    new MutationObserver(draw).observe(section, { childList: true });
    new MutationObserver(refreshSoon).observe(slots, { childList: true, subtree: true });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
