// The customer usage page: renders the current-period usage and the prepaid wallets (balance,
// held, available, active holds, recent ledger entries) and refreshes both by polling
// usage.json. Amounts and units arrive as exact decimal strings and are only ever formatted
// as strings here (grouping, padding) — never parsed into floats.
(function () {
  "use strict";

  var root = document.getElementById("usage");
  var walletsRoot = document.getElementById("wallets");
  var status = document.getElementById("usage-status");
  var initial = document.getElementById("usage-initial");
  if (!root || !walletsRoot || !status || !initial) return;

  var url = root.dataset.url;
  var intervalMs = parseInt(root.dataset.intervalMs, 10) || 2000;
  var previous = {};
  var seenEntries = null; // entry ids already shown: new ones flash (none on the first render)
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

  // The row's hard limit and included allowance, worded as billing/views.py words them for the
  // first render: "Limit 750 / 1,000 (75%)" (+ "Limit reached: blocked beyond 1,000"),
  // "included: 1,000, 250 left".
  function allowanceNotes(row) {
    var notes = [];
    if (row.limit) {
      var cap = formatDecimal(row.limit.units, 0);
      var note = el("div", "allowance muted",
        "Limit " + formatDecimal(row.units, 0) + " / " + cap + " (" + formatDecimal(row.limit.percent_used, 0) + "%)");
      if (row.limit.reached) {
        var state = row.limit.exceeded ? "Over the limit" : "Limit reached";
        var beyond = row.limit.overage === "block" ? "blocked" : "billed as overage";
        var words = state + ": " + beyond + " beyond " + cap;
        if (row.limit.overage === "block" && row.limit.exceeded) {
          words += " (" + formatDecimal(row.limit.blocked, 0) + " blocked, not charged)";
        }
        note.appendChild(document.createTextNode(" "));
        note.appendChild(el("span", "badge bad", words));
      }
      notes.push(note);
    }
    if (row.included) {
      notes.push(el("div", "allowance muted",
        "included: " + formatDecimal(row.included.units, 0) + ", " + formatDecimal(row.included.remaining, 0) + " left"));
    }
    return notes;
  }

  function metricRow(sub, row) {
    var key = sub.subscription_id + "|" + row.metric + "|" + row.dimension_key;
    var tr = el("tr");
    var name = el("td", "", row.metric_name + " ");
    name.appendChild(el("code", "", row.metric));
    if (row.dimension_key) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("span", "dim", row.dimension_key)); }
    allowanceNotes(row).forEach(function (note) { name.appendChild(note); });
    tr.appendChild(name);
    var units = el("td", "num", formatDecimal(row.units, 0) + " ");
    units.appendChild(el("span", "muted", row.unit));
    tr.appendChild(units);
    tr.appendChild(el("td", "num", groupThousands(String(row.event_count))));
    var amount = el("td", "num");
    amount.appendChild(aforoMoney.span(row.amount, sub.currency));
    tr.appendChild(amount);
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
    var strongTotal = el("strong");
    strongTotal.appendChild(aforoMoney.span(sub.amount_total, sub.currency));
    total.appendChild(strongTotal);
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
    card.appendChild(scrolling(table));
    return card;
  }


  // 272 -> "4m 32s"; 0 -> "expiring" (past its TTL, released by the next expiry sweep).
  function durationText(seconds) {
    if (seconds <= 0) return "expiring";
    var hours = Math.floor(seconds / 3600), minutes = Math.floor((seconds % 3600) / 60), rest = seconds % 60;
    if (hours) return hours + "h " + minutes + "m";
    if (minutes) return minutes + "m " + rest + "s";
    return rest + "s";
  }

  // To the currency's minor unit, the exact figure on hover; a negative amount (a prepaid
  // shortfall) in the alert colour (static/js/money.js).
  function money(text, currency) {
    return aforoMoney.span(text, currency);
  }

  // A table in a box of its own that scrolls sideways on a narrow screen (the page never does).
  function scrolling(tableNode) {
    var box = el("div", "table-scroll");
    box.appendChild(tableNode);
    return box;
  }

  function table(className, columns, rows) {
    var node = el("table", "usage " + className);
    var headRow = el("tr");
    columns.forEach(function (column) { headRow.appendChild(el("th", column[1], column[0])); });
    var thead = el("thead");
    thead.appendChild(headRow);
    node.appendChild(thead);
    var body = el("tbody");
    rows.forEach(function (row) { body.appendChild(row); });
    node.appendChild(body);
    return node;
  }

  function cell(className, content) {
    var td = el("td", className);
    if (typeof content === "string") td.textContent = content; else td.appendChild(content);
    return td;
  }

  function holdRow(wallet, hold) {
    var tr = el("tr");
    tr.appendChild(cell("", el("code", "", hold.reference)));
    tr.appendChild(cell("num", money(hold.amount, wallet.currency)));
    tr.appendChild(cell("num", money(hold.remaining, wallet.currency)));
    tr.appendChild(cell("num", durationText(hold.expires_in_seconds)));
    return tr;
  }

  function grantRow(wallet, grant) {
    var row = el("tr", grant.usable_now ? "" : "muted");
    row.appendChild(cell("", grant.name + (grant.kind === "paid" ? " (paid)" : "")));
    row.appendChild(cell("num", money(grant.amount, wallet.currency)));
    row.appendChild(cell("num", money(grant.remaining, wallet.currency)));
    row.appendChild(cell("", grant.expires_at ? grant.expires_at.slice(0, 16).replace("T", " ") + " UTC" : "never"));
    return row;
  }

  function entryRow(wallet, entry, fresh) {
    var tr = el("tr", fresh ? "changed" : "");
    tr.appendChild(cell("", entry.created_at.slice(0, 10) + " " + entry.created_at.slice(11, 19)));
    tr.appendChild(cell("", entry.kind_label));
    tr.appendChild(cell("", el("code", "", entry.reference)));
    // The sign of a change is always shown: "+2.00 USD", "-1.50 USD".
    tr.appendChild(cell("num", entry.amount === "0" ? "" : aforoMoney.span(entry.amount, wallet.currency, true)));
    tr.appendChild(cell("num", entry.held_change === "0" ? "" : aforoMoney.span(entry.held_change, wallet.currency, true)));
    tr.appendChild(cell("num", money(entry.available_after, wallet.currency)));
    return tr;
  }

  function walletCard(wallet, seen) {
    var card = el("section", "card wallet" + (wallet.low_balance ? " low" : ""));
    card.dataset.walletId = wallet.wallet_id;
    var head = el("header", "sub-head");
    var left = el("div");
    var title = el("h2", "", (wallet.label || "Wallet") + " ");
    title.appendChild(el("span", "muted", "· " + wallet.currency));
    left.appendChild(title);
    var note = el("p", "muted");
    if (wallet.low_balance) { note.appendChild(el("span", "badge bad", "Low balance")); note.appendChild(document.createTextNode(" ")); }
    note.appendChild(document.createTextNode("Updated " + wallet.updated_at.slice(11, 19) + " UTC"));
    left.appendChild(note);
    head.appendChild(left);
    var total = el("p", "total");
    total.appendChild(el("span", "muted", "Available "));
    var strong = el("strong");
    strong.appendChild(money(wallet.available, wallet.currency));
    total.appendChild(strong);
    head.appendChild(total);
    card.appendChild(head);

    var figures = el("dl", "figures");
    var key = "wallet|" + wallet.wallet_id;
    var signature = wallet.balance + "/" + wallet.held;
    var changed = previous[key] !== undefined && previous[key] !== signature;
    previous[key] = signature;
    [["Balance", wallet.balance], ["Held", wallet.held], ["Available", wallet.available]].forEach(function (figure) {
      var box = el("div", changed ? "changed" : "");
      box.appendChild(el("dt", "", figure[0]));
      var value = el("dd");
      value.appendChild(money(figure[1], wallet.currency));
      box.appendChild(value);
      figures.appendChild(box);
    });
    card.appendChild(figures);

    var holdsTitle = el("h3", "", "Active holds ");
    holdsTitle.appendChild(el("span", "muted", "(" + groupThousands(String(wallet.active_hold_count)) + ")"));
    card.appendChild(holdsTitle);
    if (wallet.holds.length) {
      card.appendChild(scrolling(table("holds", [["Reference", ""], ["Amount", "num"], ["Remaining", "num"], ["Expires in", "num"]],
        wallet.holds.map(function (hold) { return holdRow(wallet, hold); }))));
      if (wallet.active_hold_count > wallet.holds.length) {
        card.appendChild(el("p", "muted", "Showing the " + wallet.holds.length + " expiring soonest."));
      }
    } else {
      card.appendChild(el("p", "muted", "No active holds."));
    }

    if (wallet.credit_grants && wallet.credit_grants.length) {
      card.appendChild(el("h3", "", "Credit grants"));
      card.appendChild(scrolling(table("grants", [["Grant", ""], ["Amount", "num"], ["Remaining", "num"], ["Expires", ""]],
        wallet.credit_grants.map(function (grant) { return grantRow(wallet, grant); }))));
    }
    card.appendChild(el("h3", "", "Recent activity"));
    if (wallet.recent_entries.length) {
      card.appendChild(scrolling(table("entries",
        [["When (UTC)", ""], ["What", ""], ["Reference", ""], ["Balance", "num"], ["Held", "num"], ["Available after", "num"]],
        wallet.recent_entries.map(function (entry) {
          var fresh = seenEntries !== null && !seenEntries[entry.entry_id];
          seen[entry.entry_id] = true;
          return entryRow(wallet, entry, fresh);
        }))));
    } else {
      card.appendChild(el("p", "muted", "No activity yet."));
    }
    return card;
  }

  function renderWallets(wallets) {
    var fragment = document.createDocumentFragment();
    var seen = {};
    (wallets || []).forEach(function (wallet) { fragment.appendChild(walletCard(wallet, seen)); });
    walletsRoot.replaceChildren(fragment);
    seenEntries = seen;
  }

  // Active alerts and budget leases: optional keys of usage.json (the alert engine and the
  // leases fill them); absent or empty reads "No active alerts" / "No active leases".
  function renderAlerts(alerts) {
    var box = document.getElementById("alerts");
    if (!box) return;
    var fragment = document.createDocumentFragment();
    fragment.appendChild(el("h2", "", "Active alerts"));
    if (alerts && alerts.length) {
      var list = el("ul", "alert-list");
      alerts.forEach(function (alert) {
        var item = el("li");
        item.appendChild(el("strong", "", alert.rule));
        if (alert.metric) {
          item.appendChild(document.createTextNode(" · "));
          item.appendChild(el("code", "", alert.metric));
        }
        item.appendChild(document.createTextNode(": " + alert.message + " "));
        var at = String(alert.triggered_at || "");
        item.appendChild(el("span", "muted", at.slice(0, 10) + " " + at.slice(11, 19) + " UTC"));
        list.appendChild(item);
      });
      fragment.appendChild(list);
    } else {
      fragment.appendChild(el("p", "muted", "No active alerts"));
    }
    box.replaceChildren(fragment);
  }

  function leaseFigure(lease, value) {
    return lease.amount !== undefined && lease.amount !== null && lease.currency
      ? aforoMoney.span(value, lease.currency) : String(value);
  }

  function renderLeases(leases) {
    var box = document.getElementById("leases");
    if (!box) return;
    var fragment = document.createDocumentFragment();
    fragment.appendChild(el("h2", "", "Budget leases"));
    if (leases && leases.length) {
      fragment.appendChild(scrolling(table("leases",
        [["Lease", ""], ["Metric", ""], ["Granted", "num"], ["Remaining", "num"], ["Expires (UTC)", "num"]],
        leases.map(function (lease) {
          var tr = el("tr");
          tr.appendChild(cell("", el("code", "", String(lease.id))));
          tr.appendChild(cell("", el("code", "", lease.metric)));
          tr.appendChild(cell("num", leaseFigure(lease, lease.amount !== undefined && lease.amount !== null ? lease.amount : lease.units)));
          tr.appendChild(cell("num", leaseFigure(lease, lease.remaining)));
          tr.appendChild(cell("num", String(lease.expires_at || "").slice(11, 19)));
          return tr;
        }))));
    } else {
      fragment.appendChild(el("p", "muted", "No active leases"));
    }
    box.replaceChildren(fragment);
  }

  function render(usage) {
    renderAlerts(usage.alerts);
    renderLeases(usage.leases);
    renderWallets(usage.wallets);
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
      .then(function (usage) {
        if (usage) render(usage);
        // The charts and projections refresh on the same tick (static/js/insights.js).
        if (usage && window.aforoInsights) return window.aforoInsights.refresh();
      })
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
