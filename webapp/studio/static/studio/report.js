/* DLLM2Rec Studio reliability report (templates/studio/_report.html), drawn with the vendored Chart.js
   the page already loads. Reads the JSON blob in #report-data (json_script); no inline script. */
(function () {
  "use strict";
  var Studio = window.Studio = window.Studio || {};
  var PALETTE = ["#0b57d0", "#c5221f", "#137333", "#b06000", "#8430ce", "#007b83", "#a142f4", "#5f6368", "#e37400", "#1967d2"];
  var ROLE_COLORS = {teacher: "#b06000", baseline: "#5f6368", distilled: "#0b57d0"};
  var ROLE_LABELS = {teacher: "teacher", baseline: "baseline student", distilled: "distilled student"};

  function color(role, i) { return ROLE_COLORS[role] || PALETTE[i % PALETTE.length]; }
  var common = {responsive: true, maintainAspectRatio: false, animation: false,
                interaction: {mode: "nearest", intersect: false}, plugins: {legend: {position: "bottom"}}};
  function options(extra) { return Object.assign({}, common, extra); }

  function bucketChart(canvas, section, roles, k, teacherK, xTitle) {
    if (!canvas || !section || !section.buckets || !section.buckets.length) { return null; }
    var buckets = section.buckets;
    return new Chart(canvas, {type: "bar",
      data: {labels: buckets.map(function (b) { return b.bucket + " (n=" + b.n + ")"; }),
             datasets: roles.map(function (role, i) {
               var label = ROLE_LABELS[role] || role;
               if (role === "teacher" && teacherK && teacherK !== k) { label += " (@" + teacherK + ")"; }
               return {label: label, backgroundColor: color(role, i),
                       data: buckets.map(function (b) { var r = b.roles[role]; return r ? r.ndcg : null; })};
             })},
      options: options({scales: {x: {title: {display: true, text: xTitle}},
                                 y: {beginAtZero: true, title: {display: true, text: "NDCG@" + k}}},
                        plugins: {legend: {position: "bottom"}, tooltip: {callbacks: {afterBody: function (items) {
                          var b = buckets[items[0].dataIndex];
                          return b.gain_pct && b.gain_pct.ndcg !== null ? "distilled vs baseline: " +
                            (b.gain_pct.ndcg >= 0 ? "+" : "") + b.gain_pct.ndcg.toFixed(1) + "%" : "";
                        }}}}})});
  }

  function reliabilityChart(canvas, rel, k) {
    if (!canvas || !rel || !rel.bins || !rel.bins.length) { return null; }
    var bins = rel.bins;
    return new Chart(canvas, {type: "line",
      data: {labels: bins.map(function (b) { return String(b.bin); }),
             datasets: [{label: "teacher HR@" + k, data: bins.map(function (b) { return b.hr; }),
                         borderColor: ROLE_COLORS.teacher, backgroundColor: ROLE_COLORS.teacher, pointRadius: 3, spanGaps: true},
                        {label: "teacher HR@" + k + " overall", data: bins.map(function () { return rel.hr; }),
                         borderColor: ROLE_COLORS.baseline, backgroundColor: "transparent", borderDash: [6, 4], pointRadius: 0}]},
      options: options({scales: {x: {title: {display: true, text: "confidence bin (equal counts, low → high)"}},
                                 y: {beginAtZero: true, title: {display: true, text: "HR@" + k}}},
                        plugins: {legend: {position: "bottom"}, tooltip: {callbacks: {afterBody: function (items) {
                          var b = bins[items[0].dataIndex];
                          return "n=" + b.n + ", mean confidence " + b.confidence + " (" + b.confidence_min + " … " + b.confidence_max + ")";
                        }}}}})});
  }

  Studio.report = function () {
    var node = document.getElementById("report-data");
    if (!node || typeof Chart === "undefined") { return; }
    var d = JSON.parse(node.textContent);
    if (!d) { return; }
    var roles = d.roles || [];
    bucketChart(document.getElementById("chart-report-popularity"), d.by_popularity, roles, d.k, d.teacher_k, "target popularity (training)");
    bucketChart(document.getElementById("chart-report-history"), d.by_history, roles, d.k, d.teacher_k, "history length (len_seq)");
    reliabilityChart(document.getElementById("chart-report-reliability"), d.teacher_reliability, d.teacher_k);
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", Studio.report);
  } else {
    Studio.report();
  }
}());
