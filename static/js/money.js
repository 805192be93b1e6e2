// Money as the dashboard shows it (the twin of aforo.money.money_display and the {% money %}
// tag): an exact decimal string rounded to the currency's minor unit, half up, with thousands
// separators and the currency code; the exact figure in the title (hover). Strings only: an
// amount is never parsed into a float here (charts convert at their own boundary).
(function () {
  "use strict";

  var table = {};
  var node = document.getElementById("currency-minor-units");
  if (node) table = JSON.parse(node.textContent);

  function groupThousands(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function minorUnits(currency) {
    return Object.prototype.hasOwnProperty.call(table, currency) ? table[currency] : 2;
  }

  // ("1234.5", 2) -> "1,234.50"; ("0.0075", 2) -> "0.01"; ("1500.5", 0) -> "1,501";
  // ("-0.001", 2) -> "0.00"; ("9.995", 2) -> "10.00". Half up: ties away from zero.
  function roundText(text, places) {
    var negative = text.charAt(0) === "-";
    if (negative) text = text.slice(1);
    var parts = text.split(".");
    var whole = parts[0] || "0", fraction = parts[1] || "";
    if (fraction.length > places) {
      var up = fraction.charAt(places) >= "5";
      fraction = fraction.slice(0, places);
      if (up) {
        var digits = (whole + fraction).split(""), i = digits.length - 1;
        while (i >= 0 && digits[i] === "9") { digits[i] = "0"; i--; }
        if (i < 0) digits.unshift("1"); else digits[i] = String(Number(digits[i]) + 1);
        var joined = digits.join("");
        whole = joined.slice(0, joined.length - places);
        fraction = joined.slice(joined.length - places);
      }
    }
    while (fraction.length < places) fraction += "0";
    var zero = /^0*$/.test(whole + fraction);
    return (negative && !zero ? "-" : "") + groupThousands(whole) + (places ? "." + fraction : "");
  }

  function format(text, currency) {
    return roundText(String(text), minorUnits(currency)) + " " + currency;
  }

  // <span class="money" title="0.0075 USD">0.01 USD</span>; a negative amount in the alert colour.
  function span(text, currency, signed) {
    text = String(text);
    var node = document.createElement("span");
    node.className = "money" + (text.charAt(0) === "-" ? " negative" : "");
    var shown = format(text, currency);
    if (signed && text.charAt(0) !== "-") shown = "+" + shown;
    node.textContent = shown;
    node.title = text + " " + currency;
    return node;
  }

  window.aforoMoney = { format: format, span: span, roundText: roundText, minorUnits: minorUnits, groupThousands: groupThousands };
})();
