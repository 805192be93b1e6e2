// The dashboard's charts and projections, from insights.json (billing/insights.py), refreshed on
// usage.js's poll tick: per subscription the commitment burn-down, the forecast and a usage +
// spend chart per metric over the current period; per wallet its balance history, its usage
// charges per day and metric, and a link to every ledger entry. Charts are uPlot
// (static/vendor/uplot), updated in place with setData and resized with their card.
//
// Amounts arrive as exact decimal strings and are shown through aforoMoney (rounded to the
// minor unit, exact on hover). Floats exist only at the chart boundary: the plotted arrays. Each
// chart element carries its points as exact text in data-points, and window.aforoCharts holds
// them by key, so what is drawn can be checked against the series it came from.
(function () {
  "use strict";

  var root = document.getElementById("insights");
  var walletsRoot = document.getElementById("wallet-history");
  var initial = document.getElementById("insights-initial");
  if (!root || !walletsRoot || !initial || !window.uPlot || !window.aforoMoney) return;

  var url = root.dataset.url;
  var plots = {}; // key -> {plot, node}
  window.aforoCharts = {};
  var CHART_HEIGHT = 200;
  var FORECAST_METHOD = "Run rate: charges so far × period length ÷ time elapsed. Usage charges only: " +
    "flat fees and minimums are added when the period is settled.";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(iso) {
    return Date.parse(iso) / 1000;
  }

  function widthOf(node) {
    return Math.max(Math.floor(node.clientWidth), 200);
  }

  // Find the child of `parent` with the given data-key, or make it with `make()` and append it.
  function keyed(parent, key, make) {
    for (var i = 0; i < parent.children.length; i++) {
      if (parent.children[i].dataset.key === key) return parent.children[i];
    }
    var node = make();
    node.dataset.key = key;
    parent.appendChild(node);
    return node;
  }

  // Remove the children of `parent` whose data-key is not in `keep` (and their charts).
  function prune(parent, keep) {
    Array.prototype.slice.call(parent.children).forEach(function (child) {
      if (child.dataset.key !== undefined && !keep[child.dataset.key]) {
        child.querySelectorAll("[data-chart-key]").forEach(function (chart) { drop(chart.dataset.chartKey); });
        parent.removeChild(child);
      }
    });
  }

  function drop(key) {
    if (plots[key]) { plots[key].plot.destroy(); delete plots[key]; }
    delete window.aforoCharts[key];
  }

  // Draw (or update in place) the chart `key` inside `node`: `data` is uPlot's columns.
  function draw(key, node, options, data, exact) {
    node.dataset.chartKey = key;
    node.dataset.points = JSON.stringify(exact);
    window.aforoCharts[key] = { points: exact, plotted: data };
    var entry = plots[key];
    if (entry && entry.node === node && entry.series === options.series.length) {
      entry.plot.setData(data);
      return;
    }
    if (entry) entry.plot.destroy();
    node.replaceChildren();
    options.width = widthOf(node);
    options.height = CHART_HEIGHT;
    var plot = new uPlot(options, data, node);
    plots[key] = { plot: plot, node: node, series: options.series.length };
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        if (plots[key] && plots[key].plot === plot) plot.setSize({ width: widthOf(node), height: CHART_HEIGHT });
      }).observe(node);
    }
  }

  function moneyAxis(currency) {
    return function (u, values) {
      // Tick values are uPlot's floats (the chart boundary): toFixed is display only.
      return values.map(function (v) { return v === null ? "" : v.toFixed(aforoMoney.minorUnits(currency)); });
    };
  }

  function usageChart(sub, series, node) {
    var exact = series.points.map(function (p) { return [p.start, p.units, p.amount]; });
    var data = [
      series.points.map(function (p) { return seconds(p.start); }),
      series.points.map(function (p) { return parseFloat(p.units); }),
      series.points.map(function (p) { return parseFloat(p.amount); }),
    ];
    draw("usage|" + sub.subscription_id + "|" + series.metric, node, {
      legend: { show: false },
      scales: { x: { time: true }, units: { auto: true }, spend: { auto: true } },
      series: [
        {},
        { label: "Units (" + series.unit + ")", scale: "units", stroke: "#2457d6", width: 2, fill: "rgba(36,87,214,0.08)" },
        { label: "Spend (" + sub.currency + ")", scale: "spend", stroke: "#b42318", width: 2 },
      ],
      axes: [
        {},
        { scale: "units", size: 48 },
        { scale: "spend", side: 1, size: 56, grid: { show: false }, values: moneyAxis(sub.currency) },
      ],
    }, data, exact);
  }

  function moneyLine(parts) {
    var p = el("p");
    parts.forEach(function (part) {
      p.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    return p;
  }

  function renderBurnDown(card, sub) {
    var box = card.querySelector(".burn");
    if (!sub.commitment) { if (box) box.remove(); return; }
    if (!box) { box = el("div", "burn"); card.insertBefore(box, card.firstChild); }
    var c = sub.commitment;
    var text = moneyLine([
      "You have consumed ", aforoMoney.span(c.consumed, sub.currency), " of your ",
      aforoMoney.span(c.amount, sub.currency), " commitment (" + c.percent + "%)",
    ]);
    text.className = "burn-text";
    var bar = el("div", "bar" + (c.met ? " met" : ""));
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", c.bar_percent);
    var fill = el("span");
    fill.style.width = c.bar_percent + "%";
    bar.appendChild(fill);
    box.replaceChildren(text, bar);
  }

  function renderForecast(card, sub) {
    var text = sub.forecast.amount === null
      ? moneyLine(["Forecast: too early to say (less than an hour of the period has passed)"])
      : moneyLine([
        "Forecast for this period: ", aforoMoney.span(sub.forecast.amount, sub.currency),
        " at the current run rate (" + sub.forecast.elapsed_percent + "% of the period elapsed)",
      ]);
    text.className = "forecast-text";
    var old = card.querySelector(".forecast-text");
    if (old) card.replaceChild(text, old); else card.appendChild(text);
    if (!card.querySelector(".forecast-method")) {
      text.insertAdjacentElement("afterend", el("p", "forecast-method muted", FORECAST_METHOD));
    }
  }

  function renderSubscription(sub) {
    var card = keyed(root, "sub|" + sub.subscription_id, function () {
      var node = el("section", "card projection");
      node.dataset.subscriptionId = sub.subscription_id;
      return node;
    });
    renderBurnDown(card, sub);
    renderForecast(card, sub);
    var charts = card.querySelector(".charts");
    if (!charts) { charts = el("div", "charts"); card.appendChild(charts); }
    var keep = {};
    sub.series.forEach(function (series) {
      var key = "metric|" + series.metric;
      keep[key] = true;
      var box = keyed(charts, key, function () {
        var node = el("figure", "chart-box");
        var caption = el("figcaption", "", series.metric_name + " per " + sub.granularity + ": ");
        caption.appendChild(el("span", "key units", "units (left)"));
        caption.appendChild(document.createTextNode(" · "));
        caption.appendChild(el("span", "key spend", "spend in " + sub.currency + " (right)"));
        node.appendChild(caption);
        node.appendChild(el("div", "chart usage-chart"));
        return node;
      });
      var chart = box.querySelector(".chart");
      chart.dataset.metric = series.metric;
      usageChart(sub, series, chart);
    });
    prune(charts, keep);
  }

  function entriesLink(wallet) {
    var query = walletsRoot.dataset.query;
    var link = el("a", "see-all", "See all entries →");
    link.href = walletsRoot.dataset.entriesUrl + wallet.wallet_id + "/entries/" + (query ? "?" + query : "");
    return link;
  }

  function activityTable(wallet) {
    if (!wallet.activity.length) return el("p", "muted", "No usage charged to this wallet in the last 7 days.");
    var node = el("table", "usage activity");
    var head = el("tr");
    [["Day (UTC)", ""], ["Metric", ""], ["Units", "num"], ["Events", "num"], ["Charged", "num"]].forEach(function (c) {
      head.appendChild(el("th", c[1], c[0]));
    });
    var thead = el("thead");
    thead.appendChild(head);
    node.appendChild(thead);
    var body = el("tbody");
    wallet.activity.forEach(function (row) {
      var tr = el("tr");
      tr.appendChild(el("td", "", row.day));
      var name = el("td", "", row.metric_name + " ");
      name.appendChild(el("code", "", row.metric));
      tr.appendChild(name);
      var units = row.units.split(".");
      tr.appendChild(el("td", "num", aforoMoney.groupThousands(units[0]) + (units.length > 1 ? "." + units[1] : "")));
      tr.appendChild(el("td", "num", aforoMoney.groupThousands(String(row.events))));
      var charged = el("td", "num");
      charged.appendChild(aforoMoney.span(row.amount, wallet.currency));
      tr.appendChild(charged);
      body.appendChild(tr);
    });
    node.appendChild(body);
    var box = el("div", "table-scroll");
    box.appendChild(node);
    return box;
  }

  function renderWallet(wallet) {
    var card = keyed(walletsRoot, "wallet|" + wallet.wallet_id, function () {
      var node = el("section", "card wallet-history");
      node.dataset.walletId = wallet.wallet_id;
      var head = el("header", "sub-head");
      head.appendChild(el("h2", "", "Wallet history · " + wallet.currency));
      node.appendChild(head);
      node.appendChild(el("h3", "", "Balance after each entry"));
      node.appendChild(el("div", "chart balance-chart"));
      node.appendChild(el("h3", "", "Usage charged per day and metric"));
      node.appendChild(el("div", "activity-box"));
      return node;
    });
    var chart = card.querySelector(".balance-chart");
    if (wallet.history.length) {
      var exact = wallet.history.map(function (p) { return [p.at, p.balance]; });
      // Entries of one transaction share a timestamp: each later one is drawn a millisecond on,
      // so every balance is a point of its own (uPlot needs increasing x).
      var times = [];
      wallet.history.forEach(function (p, i) {
        var at = seconds(p.at);
        times.push(i && at <= times[i - 1] ? times[i - 1] + 0.001 : at);
      });
      draw("balance|" + wallet.wallet_id, chart, {
        legend: { show: false },
        scales: { x: { time: true }, y: { auto: true } },
        series: [{}, {
          label: "Balance (" + wallet.currency + ")", stroke: "#2457d6", width: 2, fill: "rgba(36,87,214,0.08)",
          paths: uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
        }],
        axes: [{}, { size: 64, values: moneyAxis(wallet.currency) }],
      }, [times, wallet.history.map(function (p) { return parseFloat(p.balance); })], exact);
    } else {
      drop("balance|" + wallet.wallet_id);
      chart.replaceChildren(el("p", "muted", "No entries yet."));
    }
    var activity = card.querySelector(".activity-box");
    activity.replaceChildren(activityTable(wallet), entriesLink(wallet));
  }

  function render(insights) {
    var keep = {};
    insights.subscriptions.forEach(function (sub) { keep["sub|" + sub.subscription_id] = true; renderSubscription(sub); });
    Array.prototype.slice.call(root.children).forEach(function (child) {
      if (!child.dataset.key) root.removeChild(child); // the server's first render
    });
    prune(root, keep);
    var keepWallets = {};
    insights.wallets.forEach(function (wallet) { keepWallets["wallet|" + wallet.wallet_id] = true; renderWallet(wallet); });
    prune(walletsRoot, keepWallets);
    root.dataset.asOf = insights.as_of;
  }

  function refresh() {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(render);
  }

  window.aforoInsights = { refresh: refresh };
  render(JSON.parse(initial.textContent));
})();
