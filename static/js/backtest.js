// Backtest results: equity curves (the portfolio and each strategy) and the portfolio's drawdown, drawn with the
// vendored lightweight-charts from the curves the page carries as JSON.
(function () {
  "use strict";

  const COLORS = ["#4c9aff", "#3fb97f", "#e5a64b", "#c77dff", "#e5534b", "#5ec4c4"];

  // [[iso time, "equity"], ...] as chart points: one per second (the last of a second wins), in time order.
  function points(curve) {
    const bySecond = new Map();
    for (const [time, equity] of curve) bySecond.set(Math.floor(Date.parse(time) / 1000), Number(equity));
    return [...bySecond].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
  }

  function underwater(series) {
    let peak = -Infinity;
    return series.map(({ time, value }) => {
      peak = Math.max(peak, value);
      return { time, value: peak > 0 ? value / peak - 1 : 0 };
    });
  }

  function chart(element) {
    return window.deskChart(element, 260);
  }

  function start() {
    const data = document.getElementById("backtest-curves");
    if (!data || typeof LightweightCharts === "undefined") return;
    const curves = JSON.parse(data.textContent);
    const equity = chart(document.getElementById("equity-chart"));
    Object.entries(curves).forEach(([name, curve], index) => {
      const series = equity.addSeries(LightweightCharts.LineSeries, {
        color: COLORS[index % COLORS.length], lineWidth: name === "portfolio" ? 3 : 1, title: name,
      });
      series.setData(points(curve));
    });
    const drawdown = chart(document.getElementById("drawdown-chart"));
    drawdown.addSeries(LightweightCharts.AreaSeries, {
      lineColor: "#e5534b", topColor: "rgba(229, 83, 75, 0.1)", bottomColor: "rgba(229, 83, 75, 0.4)", title: "drawdown",
    }).setData(underwater(points(curves.portfolio || [])));
    document.body.dataset.chartsDrawn = "true";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
