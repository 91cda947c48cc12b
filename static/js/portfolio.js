// The dashboard's combined equity chart: every strategy's equity summed at each quarter-hour of the last day,
// drawn with the vendored lightweight-charts from the series the page carries as JSON ([epoch seconds, value]).
(function () {
  "use strict";

  function start() {
    const data = document.getElementById("combined-equity");
    const element = document.getElementById("combined-chart");
    if (!data || !element || typeof LightweightCharts === "undefined") return;
    const chart = LightweightCharts.createChart(element, {
      height: 200, autoSize: true, layout: { background: { color: "#171e26" }, textColor: "#d8dee6" },
      grid: { vertLines: { color: "#26313d" }, horzLines: { color: "#26313d" } },
      timeScale: { timeVisible: true },
    });
    const series = chart.addSeries(LightweightCharts.LineSeries, { color: "#4c9aff", lineWidth: 2, title: "combined equity" });
    series.setData(JSON.parse(data.textContent).map(([time, value]) => ({ time, value })));
    chart.timeScale().fitContent();
    // What the chart holds, for people and tests to compare with the page's data-points.
    element.dataset.drawnPoints = String(series.data().length);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
