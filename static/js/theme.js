// Loaded in <head> on every DevBench page.
//
// The light/dark theme: remembered per browser under the same localStorage key ("theme") the
// Django admin uses, so the admin panel and DevBench's pages follow one choice. "auto" or no
// choice follows the system setting. Applied before the body renders, so pages never flash.
//
// Local times: every <time datetime="..."> the server renders (in UTC) is shown in the
// browser's locale and time zone with Intl.DateTimeFormat; window.DevBench.localTimes(root)
// does the same for elements added later (the dashboard's new bench cards).
(function () {
  "use strict";
  var KEY = "theme";

  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; /* storage disabled */ }
  }

  function systemTheme() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function chosen() {
    var value = stored();
    return value === "dark" || value === "light" ? value : systemTheme();
  }

  function apply(theme) {
    document.documentElement.setAttribute("data-bs-theme", theme);
    var toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.checked = theme === "dark";
  }

  var formatter = null;
  function format(date) {
    if (!formatter) {
      try {
        formatter = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
      } catch (e) {
        formatter = { format: function (d) { return d.toLocaleString(); } };
      }
    }
    return formatter.format(date);
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      el.textContent = format(date);
      el.title = date.toISOString();
      el.setAttribute("data-localized", "");
    });
  }

  window.DevBench = window.DevBench || {};
  window.DevBench.localTimes = localTimes;
  window.DevBench.formatTime = format;

  apply(chosen());
  if (window.matchMedia) {
    var query = window.matchMedia("(prefers-color-scheme: dark)");
    var follow = function () { if (stored() !== "dark" && stored() !== "light") apply(systemTheme()); };
    if (query.addEventListener) query.addEventListener("change", follow);
  }
  // Another tab (or the admin panel) changed the choice.
  window.addEventListener("storage", function (event) { if (event.key === KEY) apply(chosen()); });

  document.addEventListener("DOMContentLoaded", function () {
    apply(document.documentElement.getAttribute("data-bs-theme"));
    localTimes(document);
    var toggle = document.getElementById("theme-toggle");
    if (!toggle) return;
    toggle.addEventListener("change", function () {
      var next = toggle.checked ? "dark" : "light";
      try { localStorage.setItem(KEY, next); } catch (e) { /* storage disabled: this page only */ }
      apply(next);
    });
  });
})();
