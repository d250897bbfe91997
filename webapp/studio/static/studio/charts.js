/* DLLM2Rec Studio charts, drawn with the vendored Chart.js (static/studio/vendor, no CDN). */
(function () {
  "use strict";
  var Studio = window.Studio = window.Studio || {};
  var PALETTE = ["#0b57d0", "#c5221f", "#137333", "#b06000", "#8430ce", "#007b83", "#a142f4", "#5f6368", "#e37400", "#1967d2"];
  var ROLE_COLORS = {teacher: "#b06000", baseline: "#5f6368", distilled: "#0b57d0"};

  function data() {
    var node = document.getElementById("chart-data");
    return node ? JSON.parse(node.textContent) : {};
  }
  function color(i) { return PALETTE[i % PALETTE.length]; }
  var common = {responsive: true, maintainAspectRatio: false, animation: false,
                interaction: {mode: "nearest", intersect: false}, plugins: {legend: {position: "bottom"}}};
  function options(extra) { return Object.assign({}, common, extra); }

  function curveSets(curves, field) {
    return curves.map(function (c, i) {
      var base = ROLE_COLORS[c.role] || color(i);
      return {label: c.label, data: c.epoch.map(function (e, j) { return {x: e, y: c[field][j]}; }),
              borderColor: c.role === "distilled" ? color(i) : base, backgroundColor: "transparent",
              borderDash: c.role === "baseline" ? [6, 4] : [], pointRadius: 2, spanGaps: true};
    });
  }

  Studio.runDetail = function (runId, live) {
    var d = data();
    var lossChart = new Chart(document.getElementById("chart-loss"), {type: "line",
      data: {datasets: curveSets(d.curves || [], "loss")},
      options: options({scales: {x: {type: "linear", title: {display: true, text: "epoch"}},
                                 y: {title: {display: true, text: "loss"}}}})});
    var ndcgChart = new Chart(document.getElementById("chart-ndcg"), {type: "line",
      data: {datasets: curveSets(d.curves || [], "ndcg")},
      options: options({scales: {x: {type: "linear", title: {display: true, text: "epoch"}},
                                 y: {title: {display: true, text: "val NDCG@20"}}}})});
    var canvas = document.getElementById("chart-latency");
    if (canvas && d.latency && d.latency.length) {
      new Chart(canvas, {type: "bar",
        data: {labels: d.latency.map(function (r) { return r.label; }),
               datasets: [{label: "p50 ms", data: d.latency.map(function (r) { return r.p50; }), backgroundColor: "#0b57d0"},
                          {label: "p95 ms", data: d.latency.map(function (r) { return r.p95; }), backgroundColor: "#8ab4f8"}]},
        options: options({scales: {y: {type: "logarithmic", title: {display: true, text: "ms per user (log scale)"}}}})});
    }
    if (!live) { return; }
    Studio.watch([String(runId)], function (run, before) {
      if (run.status !== before.status || run.stage !== before.stage) { window.location.reload(); return; }
      fetch("/runs/" + runId + "/curves/", {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (payload) {
          lossChart.data.datasets = curveSets(payload.curves, "loss"); lossChart.update();
          ndcgChart.data.datasets = curveSets(payload.curves, "ndcg"); ndcgChart.update();
        });
    });
  };

  Studio.compare = function () {
    var d = data();
    new Chart(document.getElementById("chart-ndcgk"), {type: "line",
      data: {labels: d.cutoffs.map(function (k) { return "@" + k; }),
             datasets: d.runs.map(function (name, i) {
               return {label: name, data: d.ndcg[i], borderColor: color(i), backgroundColor: color(i), spanGaps: true};
             })},
      options: options({scales: {y: {title: {display: true, text: "test NDCG@K"}}}})});
    var axes = d.parallel.axes;
    new Chart(document.getElementById("chart-parallel"), {type: "line",
      data: {labels: axes.map(function (a) { return a.name; }),
             datasets: d.runs.map(function (name, i) {
               return {label: name, data: axes.map(function (a) { return a.scaled[i]; }), borderColor: color(i),
                       backgroundColor: color(i), tension: 0, spanGaps: true};
             })},
      options: options({scales: {y: {min: 0, max: 1, ticks: {display: false}, title: {display: true, text: "low → high, per axis"}}},
                        plugins: {legend: {position: "bottom"}, tooltip: {callbacks: {label: function (ctx) {
                          return ctx.dataset.label + ": " + axes[ctx.dataIndex].labels[ctx.datasetIndex];
                        }}}}})});
  };

  Studio.study = function () {
    var d = data();
    var axes = d.parallel.axes;
    new Chart(document.getElementById("chart-parallel"), {type: "line",
      data: {labels: axes.map(function (a) { return a.name; }),
             datasets: d.points.map(function (name, i) {
               var best = i === d.best;
               return {label: name + (best ? " (chosen on val)" : ""), data: axes.map(function (a) { return a.scaled[i]; }),
                       borderColor: best ? "#0b57d0" : "rgba(87, 96, 106, 0.45)", backgroundColor: best ? "#0b57d0" : "rgba(87, 96, 106, 0.45)",
                       borderWidth: best ? 4 : 1.5, order: best ? 0 : 1, tension: 0, spanGaps: true};
             })},
      options: options({scales: {y: {min: 0, max: 1, ticks: {display: false}, title: {display: true, text: "low → high, per axis"}}},
                        plugins: {legend: {display: d.points.length <= 12, position: "bottom"},
                                  tooltip: {callbacks: {label: function (ctx) {
                                    return ctx.dataset.label + ": " + axes[ctx.dataIndex].labels[ctx.datasetIndex];
                                  }}}}})});
    Studio.sortable(document.getElementById("study-table"));
  };

  // Click a column header's button to sort the table's rows by it (again: the other way).
  Studio.sortable = function (table) {
    if (!table) { return; }
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    heads.forEach(function (th, column) {
      var button = th.querySelector("button.sort");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = button.dataset.type === "number";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        function key(row) {
          var cell = row.cells[column];
          var raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
          if (!numeric) { return raw; }
          var value = parseFloat(raw);
          return isNaN(value) ? -Infinity : value;
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var order = numeric ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true});
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  };

  Studio.dataset = function () {
    var d = data();
    if (!d.histogram) { return; }
    new Chart(document.getElementById("chart-lengths"), {type: "bar",
      data: {labels: d.histogram.labels, datasets: [{label: "users", data: d.histogram.counts, backgroundColor: "#0b57d0"}]},
      options: options({scales: {x: {title: {display: true, text: "interactions per user"}},
                                 y: {title: {display: true, text: "users"}}}})});
  };
}());
