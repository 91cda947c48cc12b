// The desk's charts: one look for every page that draws one (lightweight-charts, vendored).
// The library's logo brings an inline <style> the pages' policy refuses: pages credit TradingView in text
// (templates/partials/chart_credit.html).
(function () {
  "use strict";

  window.deskChart = function (element, height) {
    return LightweightCharts.createChart(element, {
      height: height, autoSize: true,
      layout: { background: { color: "#171e26" }, textColor: "#d8dee6", attributionLogo: false },
      grid: { vertLines: { color: "#26313d" }, horzLines: { color: "#26313d" } },
      timeScale: { timeVisible: true },
    });
  };
})();
