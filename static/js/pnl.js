// A strategy's P&L page: its equity curve and drawdown (underwater) chart, drawn with the vendored
// lightweight-charts from the downsampled series the page carries as JSON ([epoch seconds, value] pairs).
(function () {
  "use strict";

  function chart(element) {
    return LightweightCharts.createChart(element, {
      height: 260, autoSize: true, layout: { background: { color: "#171e26" }, textColor: "#d8dee6" },
      grid: { vertLines: { color: "#26313d" }, horzLines: { color: "#26313d" } },
      timeScale: { timeVisible: true },
    });
  }

  function draw(element, type, options, pairs) {
    const series = chart(element).addSeries(type, options);
    series.setData(pairs.map(([time, value]) => ({ time, value })));
    // What the chart holds, for people and tests to compare with the page's data-points.
    element.dataset.drawnPoints = String(series.data().length);
  }

  function start() {
    const data = document.getElementById("pnl-charts");
    if (!data || typeof LightweightCharts === "undefined") return;
    const series = JSON.parse(data.textContent);
    draw(document.getElementById("equity-chart"), LightweightCharts.LineSeries,
      { color: "#4c9aff", lineWidth: 2, title: "equity" }, series.equity);
    draw(document.getElementById("drawdown-chart"), LightweightCharts.AreaSeries, {
      lineColor: "#e5534b", topColor: "rgba(229, 83, 75, 0.1)", bottomColor: "rgba(229, 83, 75, 0.4)", title: "drawdown",
    }, series.drawdown);
    document.body.dataset.chartsDrawn = "true";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
