// Marks: where each strategy stands after its market's latest candle, sent on the desk websocket (`marks`). Any
// page shows them the same way: every element marked data-marks-of="<id>" gets its data-mark="<field>" figures.
(function () {
  "use strict";

  const AMOUNT = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  // A figure as the server renders it: amounts with two decimals, times as "YYYY-MM-DD HH:MM" (UTC).
  function markText(name, value) {
    if (name === "last_candle_time") return value.slice(0, 16).replace("T", " ");
    return AMOUNT.format(Number(value));
  }

  // Where each strategy stands after its market's latest candle: every element marked
  // data-marks-of="<id>" gets its data-mark="<field>" figures (and P&L, realized plus unrealized)
  // and the candle's time as data-last-candle.
  window.deskMarks = function (message) {
    Object.keys(message.marks).forEach(function (id) {
      const mark = Object.assign({}, message.marks[id]);
      if (mark.realized_pnl !== undefined && mark.unrealized_pnl !== undefined) {
        mark.pnl = String(Number(mark.realized_pnl) + Number(mark.unrealized_pnl));
      }
      document.querySelectorAll('[data-marks-of="' + CSS.escape(id) + '"]').forEach(function (part) {
        part.querySelectorAll("[data-mark]").forEach(function (field) {
          const value = mark[field.dataset.mark];
          if (value === undefined || value === null) return;
          field.textContent = markText(field.dataset.mark, value);
          if (field.classList.contains("gain") || field.classList.contains("loss")) {
            field.classList.toggle("loss", Number(value) < 0);
            field.classList.toggle("gain", Number(value) >= 0);
          }
        });
        if (mark.last_candle_time) part.dataset.lastCandle = mark.last_candle_time;
      });
    });
  };
})();
