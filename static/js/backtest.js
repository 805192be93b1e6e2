// The price backtest's chart (templates/admin/backtest.html): customers per bucket of % change,
// as uPlot bars. The counts are whole numbers; the table beside it is the exact figure.
(function () {
  "use strict";
  var node = document.getElementById("backtest-chart");
  var source = document.getElementById("backtest-histogram-data");
  if (!node || !source || !window.uPlot) return;
  var buckets = JSON.parse(source.textContent);
  var xs = buckets.map(function (_, i) { return i; });
  var counts = buckets.map(function (b) { return b.customers; });
  var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 60] }) : undefined;
  var options = {
    width: Math.max(node.clientWidth || 0, 480),
    height: 240,
    legend: { show: false },
    scales: { x: { time: false, range: [-0.5, buckets.length - 0.5] }, y: { range: [0, Math.max.apply(null, counts.concat([1])) * 1.1] } },
    series: [{}, { label: "Customers", stroke: "#2457d6", fill: "rgba(36,87,214,0.35)", paths: bars, points: { show: false } }],
    axes: [
      { splits: function () { return xs; }, values: function () { return buckets.map(function (b) { return b.bucket; }); }, size: 40 },
      { size: 40, values: function (u, vals) { return vals.map(function (v) { return v % 1 === 0 ? String(v) : ""; }); } },
    ],
  };
  node.replaceChildren();
  new uPlot(options, [xs, counts], node);
  node.dataset.points = JSON.stringify(counts);
})();
