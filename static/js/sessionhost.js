// The dashboard's session-host card (templates/sessionhosts/_card.html): the live status on load
// (GET .../status), "Start session host" sends the idempotent POST, then the card follows the
// status until the pod and its certificate are ready. URLs come from the card's data attributes.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var POLL_LIMIT = 60;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setBadge(el, text, tone) {
    el.textContent = text;
    el.className = "badge text-bg-" + tone;
  }

  function init(card) {
    var ensureUrl = card.getAttribute("data-ensure-url");
    var statusUrl = card.getAttribute("data-status-url");
    var button = card.querySelector("[data-sh-start]");
    var state = card.querySelector("[data-sh-state]");
    var cert = card.querySelector("[data-sh-cert]");
    var certReason = card.querySelector("[data-sh-cert-reason]");
    var sessions = card.querySelector("[data-sh-sessions]");
    var created = card.querySelector("[data-sh-created]");
    var error = card.querySelector("[data-sh-error]");
    var polls = 0;
    var timer = null;
    var unavailable = false;

    function showError(message) {
      error.textContent = message || "";
      error.classList.toggle("d-none", !message);
    }

    function render(body) {
      showError("");
      if (body.ready) {
        setBadge(state, "Ready", "success");
      } else if (body.createdAt) {
        setBadge(state, "Starting", "warning");
      } else {
        setBadge(state, "Not running", "secondary");
      }
      if (body.certReady) {
        setBadge(cert, "Ready", "success");
        certReason.textContent = "";
      } else {
        setBadge(cert, "Pending", "warning");
        certReason.textContent = body.certPendingReason || "";
      }
      var count = body.atchSessionCount || 0;
      sessions.textContent = count === 1 ? "1 session" : count + " sessions";
      created.textContent = body.createdAt ? new Date(body.createdAt).toLocaleString() : "—";
      button.textContent = body.createdAt ? "Check and repair" : "Start session host";
    }

    function request(method, url) {
      var headers = { "Accept": "application/json" };
      if (method !== "GET") {
        headers["X-CSRFToken"] = csrfToken();
      }
      return fetch(url, { method: method, headers: headers, credentials: "same-origin" }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) {
            var failure = new Error(body.error || ("HTTP " + response.status));
            failure.status = response.status;
            throw failure;
          }
          return body;
        });
      });
    }

    function fail(err) {
      if (err.status === 503) {
        unavailable = true;
        setBadge(state, "Unavailable", "secondary");
        setBadge(cert, "Unavailable", "secondary");
        button.disabled = true;
      }
      showError(err.message);
    }

    function follow(body) {
      render(body);
      clearTimeout(timer);
      if ((!body.ready || !body.certReady) && body.createdAt && polls < POLL_LIMIT) {
        polls += 1;
        timer = setTimeout(function () {
          request("GET", statusUrl).then(follow, fail);
        }, POLL_MS);
      }
    }

    button.addEventListener("click", function () {
      button.disabled = true;
      polls = 0;
      request("POST", ensureUrl).then(follow, fail).then(function () {
        button.disabled = unavailable;
      });
    });

    request("GET", statusUrl).then(follow, fail);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var card = document.getElementById("session-host-card");
    if (card) {
      init(card);
    }
  });
})();
