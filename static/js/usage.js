// The customer usage page: renders the current-period usage and refreshes it by polling
// usage.json. Amounts and units arrive as exact decimal strings and are only ever formatted
// as strings here (grouping, padding) — never parsed into floats.
(function () {
  "use strict";

  var root = document.getElementById("usage");
  var status = document.getElementById("usage-status");
  var initial = document.getElementById("usage-initial");
  if (!root || !status || !initial) return;

  var url = root.dataset.url;
  var intervalMs = parseInt(root.dataset.intervalMs, 10) || 2000;
  var previous = {};
  var timer = null;
  var stopped = false;

  function groupThousands(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // "1234.5" -> "1,234.50" (minFraction 2); "0.003" stays "0.003"; "-12" -> "-12.00".
  function formatDecimal(text, minFraction) {
    var sign = "";
    if (text.charAt(0) === "-") { sign = "-"; text = text.slice(1); }
    var parts = text.split(".");
    var fraction = parts[1] || "";
    while (fraction.length < minFraction) fraction += "0";
    return sign + groupThousands(parts[0]) + (fraction ? "." + fraction : "");
  }

  function periodText(iso) {
    // "2026-11-01T00:00:00Z" -> "2026-11-01"; keeps the time when a period starts mid-day.
    var time = iso.slice(11, 16);
    return iso.slice(0, 10) + (time === "00:00" ? "" : " " + time + " UTC");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function metricRow(sub, row) {
    var key = sub.subscription_id + "|" + row.metric + "|" + row.dimension_key;
    var tr = el("tr");
    var name = el("td", "", row.metric_name + " ");
    name.appendChild(el("code", "", row.metric));
    if (row.dimension_key) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("span", "dim", row.dimension_key)); }
    tr.appendChild(name);
    var units = el("td", "num", formatDecimal(row.units, 0) + " ");
    units.appendChild(el("span", "muted", row.unit));
    tr.appendChild(units);
    tr.appendChild(el("td", "num", groupThousands(String(row.event_count))));
    tr.appendChild(el("td", "num", formatDecimal(row.amount, 2) + " " + sub.currency));
    var signature = row.units + "/" + row.amount + "/" + row.event_count;
    if (previous[key] !== undefined && previous[key] !== signature) tr.className = "changed";
    previous[key] = signature;
    return tr;
  }

  function subscriptionCard(sub) {
    var card = el("section", "card subscription");
    var head = el("header", "sub-head");
    var left = el("div");
    var title = el("h2", "", sub.offering + " ");
    title.appendChild(el("span", "muted", "· " + sub.rate_plan));
    left.appendChild(title);
    left.appendChild(el("p", "muted", "Period " + periodText(sub.period_start) + " → " + periodText(sub.period_end) + " · " + sub.billing_mode));
    head.appendChild(left);
    var total = el("p", "total");
    total.appendChild(el("span", "muted", "So far "));
    total.appendChild(el("strong", "", formatDecimal(sub.amount_total, 2) + " " + sub.currency));
    head.appendChild(total);
    card.appendChild(head);

    var table = el("table", "usage");
    var headRow = el("tr");
    [["Metric", ""], ["Units", "num"], ["Events", "num"], ["Amount", "num"]].forEach(function (column) {
      headRow.appendChild(el("th", column[1], column[0]));
    });
    var thead = el("thead");
    thead.appendChild(headRow);
    table.appendChild(thead);
    var body = el("tbody");
    sub.metrics.forEach(function (row) { body.appendChild(metricRow(sub, row)); });
    table.appendChild(body);
    card.appendChild(table);
    return card;
  }

  function render(usage) {
    var fragment = document.createDocumentFragment();
    if (!usage.subscriptions.length) fragment.appendChild(el("p", "empty", "No active subscription."));
    usage.subscriptions.forEach(function (sub) { fragment.appendChild(subscriptionCard(sub)); });
    root.replaceChildren(fragment);
    status.textContent = "updated " + usage.as_of.slice(11, 19) + " UTC";
    status.classList.remove("stale");
  }

  function schedule() {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(poll, intervalMs);
  }

  function poll() {
    if (document.hidden) return; // resumed by visibilitychange
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          stopped = true;
          status.textContent = "signed out — reload the page to log in again";
          status.classList.add("stale");
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (usage) { if (usage) render(usage); })
      .catch(function () {
        status.textContent = "connection lost — retrying…";
        status.classList.add("stale");
      })
      .then(schedule);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !stopped) poll();
  });

  render(JSON.parse(initial.textContent));
  schedule();
})();
