// Progressive enhancements for the dashboard; every page works without them.
// Served from our own origin (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  // Auto-refresh: the server marks <body data-refresh="30"> with the period the user chose
  // (remembered in their session; on at 30 s by default). Reload the same URL, but never while
  // someone is typing in a form or the tab is hidden (then reload as soon as it is visible
  // again). The short-lived cookie tells the server this load is not a look at the list, so
  // "N new since you looked" keeps counting from the last time a person loaded it.
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (seconds > 0) {
    var due = false;
    var reload = function () {
      document.cookie = "triage_autoreload=1; path=/; max-age=20; SameSite=Strict";
      window.location.reload();
    };
    var busy = function () {
      var el = document.activeElement;
      return el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
    };
    var tick = function () {
      if (document.hidden || busy()) {
        due = true;
        return;
      }
      reload();
    };
    window.setInterval(tick, seconds * 1000);
    document.addEventListener("visibilitychange", function () {
      if (due && !document.hidden && !busy()) reload();
    });
  }

  // A GET form (the filters) sends only the fields that say something: an empty text box or
  // select adds nothing to the URL, so the address stays short and shareable
  // (/?status=failed, not /?q=&namespace=&resource_kind=&...). The fields are disabled for the
  // submission only: the browser reads the form's data before this timer runs, and a page
  // restored by the back button gets them enabled again.
  var quiet = function (form) {
    var fields = form.querySelectorAll("input[name], select[name], textarea[name]");
    var off = [];
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (!field.disabled && field.type !== "checkbox" && field.type !== "radio" && field.value === "") {
        field.disabled = true;
        off.push(field);
      }
    }
    return off;
  };
  var enable = function (fields) {
    for (var i = 0; i < fields.length; i++) fields[i].disabled = false;
  };
  var quieted = [];
  var forms = document.querySelectorAll('form[method="get"]');
  for (var f = 0; f < forms.length; f++) {
    forms[f].addEventListener("submit", function (event) {
      var off = quiet(event.target);
      quieted = quieted.concat(off);
      window.setTimeout(function () { enable(off); }, 0);
    });
  }
  window.addEventListener("pageshow", function () {
    enable(quieted);
    quieted = [];
  });

  // Type-ahead for long checkbox lists (cluster, namespace, kind, fault type): a text box above
  // the list hides the choices that do not contain what is typed; checked ones always stay.
  // Without JavaScript the lists are plain checkboxes. The box has no name: it is never sent.
  var lists = document.querySelectorAll("fieldset[data-typeahead]");
  for (var t = 0; t < lists.length; t++) {
    (function (fieldset) {
      var labels = fieldset.querySelectorAll("label");
      if (labels.length < 8) return;
      var legend = fieldset.querySelector("legend");
      var box = document.createElement("input");
      box.type = "search";
      box.className = "typeahead";
      box.setAttribute("aria-label", "Find " + (legend ? legend.textContent.trim() : "a choice"));
      box.placeholder = "Type to narrow";
      fieldset.insertBefore(box, legend ? legend.nextSibling : fieldset.firstChild);
      box.addEventListener("input", function () {
        var text = box.value.trim().toLowerCase();
        for (var i = 0; i < labels.length; i++) {
          var input = labels[i].querySelector("input");
          var keep = !text || (input && input.checked) ||
            labels[i].textContent.toLowerCase().indexOf(text) !== -1;
          var item = labels[i].closest("div") || labels[i];
          item.hidden = !keep;
        }
      });
    })(lists[t]);
  }
})();
