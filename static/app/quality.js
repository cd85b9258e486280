// Quality pages: the threshold explorer (moves a marker on the server-drawn ROC chart and shows the figures at the
// chosen threshold) and Bootstrap tooltips for undefined figures. The charts themselves need no script.
(function () {
  "use strict";

  function pct(v) {
    return v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%";
  }

  function explorer() {
    var dataNode = document.getElementById("threshold-data");
    var slider = document.getElementById("threshold-slider");
    if (!dataNode || !slider) return;
    var rows = JSON.parse(dataNode.textContent);
    if (!rows.length) return;
    var chart = document.querySelector('svg[data-chart="roc"]');
    var marker = chart ? chart.querySelector(".roc-threshold-marker") : null;
    var plot = chart ? chart.getAttribute("data-plot").split(",").map(Number) : null;
    var set = function (id, text) {
      var node = document.getElementById(id);
      if (node) node.textContent = text;
    };
    var ci = function (lo, hi) {
      return lo === null || lo === undefined ? "" : pct(lo) + " to " + pct(hi);
    };
    function show() {
      var index = Math.max(0, Math.min(rows.length - 1, Math.round(Number(slider.value) * (rows.length - 1) / 100)));
      var row = rows[index];
      set("threshold-value", row.threshold.toFixed(2));
      set("te-sensitivity", pct(row.sensitivity));
      set("te-sensitivity-ci", ci(row.sensitivity_low, row.sensitivity_high));
      set("te-specificity", pct(row.specificity));
      set("te-specificity-ci", ci(row.specificity_low, row.specificity_high));
      set("te-ppv", pct(row.ppv));
      set("te-npv", pct(row.npv));
      set("te-tpfp", row.tp + " · " + row.fp);
      set("te-fntn", row.fn + " · " + row.tn);
      if (marker && plot && row.sensitivity !== null && row.specificity !== null) {
        marker.setAttribute("cx", (plot[0] + plot[2] * (1 - row.specificity)).toFixed(1));
        marker.setAttribute("cy", (plot[1] + plot[3] - plot[3] * row.sensitivity).toFixed(1));
        marker.setAttribute("visibility", "visible");
        marker.querySelector("title").textContent =
          "Threshold " + row.threshold.toFixed(2) + ": sensitivity " + pct(row.sensitivity) +
          ", specificity " + pct(row.specificity);
      } else if (marker) {
        marker.setAttribute("visibility", "hidden");
      }
    }
    slider.addEventListener("input", show);
    show();
  }

  function tooltips() {
    if (!window.bootstrap) return;
    document.querySelectorAll('[data-bs-toggle="tooltip"]').forEach(function (node) {
      new window.bootstrap.Tooltip(node);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    explorer();
    tooltips();
  });
})();
