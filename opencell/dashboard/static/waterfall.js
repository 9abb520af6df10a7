/* The waterfall: bars placed from their data-left/data-width (percent of the turn; the CSP
   forbids style="" attributes), and a click on a bar opens its step in the replay. */
(function () {
  "use strict";
  document.querySelectorAll(".waterfall .wf-bar").forEach(function (bar) {
    bar.style.left = parseFloat(bar.dataset.left || "0") + "%";
    bar.style.width = parseFloat(bar.dataset.width || "0") + "%";
  });
  document.addEventListener("click", function (event) {
    var bar = event.target.closest ? event.target.closest("a[data-goto]") : null;
    if (!bar) return;
    var step = document.querySelector('.timeline [data-event-id="' + bar.dataset.goto + '"]');
    if (!step) return;
    event.preventDefault();
    var details = step.querySelector("details");
    if (details) details.open = true;
    step.scrollIntoView({ behavior: "smooth", block: "center" });
    step.classList.remove("flash");
    void step.offsetWidth;  // restart the animation
    step.classList.add("flash");
    if (history.replaceState) history.replaceState(null, "", "#step-" + bar.dataset.goto);
  });
})();
