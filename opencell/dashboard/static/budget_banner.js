/* The budget alert banner follows the store: every 15 s the page asks /api/budgets which
   alerts are active and shows, updates or removes the banner (text set with textContent). */
(function () {
  "use strict";
  var EVERY_MS = 15000;
  var main = document.querySelector("main.container");
  if (!main || !window.fetch) return;

  function render(active) {
    var banner = document.getElementById("budget-banner");
    if (!active.length) {
      if (banner) banner.remove();
      return;
    }
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "budget-banner";
      banner.className = "banner banner-warn small";
      main.insertBefore(banner, main.firstChild);
    }
    banner.textContent = "";
    var label = document.createElement("strong");
    label.textContent = "Budget alert:";
    banner.appendChild(label);
    var more = active.length > 1 ? " (and " + (active.length - 1) + " more)" : "";
    banner.appendChild(document.createTextNode(" " + active[0].message + more + " · "));
    var link = document.createElement("a");
    link.href = "/budgets";
    link.textContent = "Budgets";
    banner.appendChild(link);
  }

  function poll() {
    fetch("/api/budgets?days=31", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        if (!data.configured) return;  // no budgets: nothing will ever show, stop asking
        render((data.alerts || []).filter(function (a) { return a.active; }));
        setTimeout(poll, EVERY_MS);
      })
      .catch(function () { setTimeout(poll, EVERY_MS * 2); });
  }
  setTimeout(poll, EVERY_MS);
})();
