// Progressive enhancements for the dashboard; every page works without them.
// Served from our own origin (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  // Auto-refresh: the server marks <body data-refresh="30"> when ?refresh=1 is in the URL, so
  // the state lives in the URL. Reload the same URL, but never while someone is typing in a
  // form or the tab is hidden (then reload as soon as it is visible again).
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (seconds > 0) {
    var due = false;
    var busy = function () {
      var el = document.activeElement;
      return el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
    };
    var tick = function () {
      if (document.hidden || busy()) {
        due = true;
        return;
      }
      window.location.reload();
    };
    window.setInterval(tick, seconds * 1000);
    document.addEventListener("visibilitychange", function () {
      if (due && !document.hidden && !busy()) window.location.reload();
    });
  }

  // On a narrow screen the filter panel starts folded so the incidents come first.
  if (window.matchMedia && window.matchMedia("(max-width: 900px)").matches) {
    var panels = document.querySelectorAll("details[data-collapse-narrow]");
    for (var i = 0; i < panels.length; i++) panels[i].open = false;
  }
})();
