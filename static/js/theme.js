// Light/dark theme, remembered per browser. Loaded in <head> so the page never flashes.
(function () {
  var KEY = "devbench-theme";
  function apply(theme) {
    document.documentElement.setAttribute("data-bs-theme", theme);
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.textContent = theme === "dark" ? "Light theme" : "Dark theme";
      button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
    }
  }
  var stored = null;
  try { stored = localStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  var initial = stored || (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  apply(initial);
  document.addEventListener("DOMContentLoaded", function () {
    apply(document.documentElement.getAttribute("data-bs-theme"));
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var next = document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark";
      try { localStorage.setItem(KEY, next); } catch (e) { /* storage disabled */ }
      apply(next);
    });
  });
})();
