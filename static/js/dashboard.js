// The dashboard: bench cards fed by the WebSocket (replaying stored logs on load), the create
// form with inline validation, and the bench actions. No framework; the server renders the
// first state and this script keeps it current.
(function () {
  "use strict";

  var NAME_RE = /^[a-zA-Z0-9_-]+$/;
  var csrfToken = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var list = document.getElementById("bench-list");
  var template = document.getElementById("bench-card-template");
  var emptyState = document.getElementById("empty-state");
  var connectionState = document.getElementById("connection-state");
  var socket = null;
  var reconnectDelay = 500;
  var cards = {}; // bench id -> {el, jobId, lastSeq, busyJobId}

  // --- cards ----------------------------------------------------------------------------------

  function cardState(el) {
    var id = el.getAttribute("data-bench-id");
    if (!cards[id]) {
      var jobId = el.getAttribute("data-latest-job-id");
      cards[id] = { el: el, jobId: jobId ? Number(jobId) : null, lastSeq: 0, busyJobId: null };
    }
    return cards[id];
  }

  function find(el, selector) { return el.querySelector(selector); }

  function setStatus(state, status) {
    var badge = find(state.el, ".bench-status");
    badge.textContent = status;
    badge.className = "badge bench-status status-" + status;
    state.el.setAttribute("data-status", status);
    var busy = status === "creating" || status === "deleting";
    find(state.el, ".bench-progress").classList.toggle("d-none", status !== "creating");
    state.el.querySelectorAll(".bench-actions [data-action]").forEach(function (button) {
      var action = button.getAttribute("data-action");
      if (action === "cancel") return;
      button.disabled = busy;
    });
  }

  function setInfo(state, message) {
    var host = state.el.getAttribute("data-ssh-host");
    var user = state.el.getAttribute("data-ssh-user");
    if (message.sshInfo) {
      find(state.el, ".bench-ssh").textContent = "ssh -p " + message.sshInfo + " " + user + "@" + host;
      find(state.el, ".copy-ssh").classList.remove("d-none");
    }
    if (message.vncInfo) {
      find(state.el, ".bench-vnc").textContent = host + ":" + message.vncInfo;
      find(state.el, ".copy-vnc").classList.remove("d-none");
    }
    var error = find(state.el, ".bench-error");
    error.textContent = message.error || "";
    error.classList.toggle("d-none", !message.error);
  }

  function setCancelVisible(state, jobId) {
    state.busyJobId = jobId;
    find(state.el, '[data-action="cancel"]').classList.toggle("d-none", !jobId);
  }

  function appendLog(state, text) {
    var log = find(state.el, ".bench-log");
    var nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(document.createTextNode(text));
    if (nearBottom) log.scrollTop = log.scrollHeight;
    var match, progress = null, re = /^PROGRESS=(\d{1,3})\s*$/gm;
    while ((match = re.exec(text)) !== null) progress = Math.min(100, Number(match[1]));
    if (progress !== null) {
      var bar = find(state.el, ".bench-progress");
      bar.setAttribute("aria-valuenow", String(progress));
      find(bar, ".progress-bar").style.width = progress + "%";
      find(bar, ".progress-bar").textContent = progress + "%";
    }
  }

  function addCard(benchId, name, hostName) {
    var fragment = template.content.cloneNode(true);
    var el = fragment.querySelector(".bench-card");
    el.setAttribute("data-bench-id", String(benchId));
    el.setAttribute("data-created-at", new Date().toISOString());
    find(el, ".bench-name").textContent = name;
    list.appendChild(fragment);
    emptyState.classList.add("d-none");
    updateCount(1);
    var state = cardState(list.querySelector('[data-bench-id="' + benchId + '"]'));
    setStatus(state, "creating");
    return state;
  }

  function removeCard(state) {
    delete cards[state.el.getAttribute("data-bench-id")];
    state.el.remove();
    updateCount(-1);
    if (!list.querySelector(".bench-card")) emptyState.classList.remove("d-none");
  }

  function updateCount(delta) {
    var count = document.getElementById("bench-count");
    count.textContent = String(Number(count.textContent) + delta);
  }

  function byBenchId(id) {
    var el = list.querySelector('[data-bench-id="' + id + '"]');
    return el ? cardState(el) : null;
  }

  // --- WebSocket ------------------------------------------------------------------------------

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message.type === "error") { console.warn("DevBench:", message.error); return; }
    var state = byBenchId(message.devbenchId);
    if (!state) return;
    if (message.type === "script_output") {
      if (message.jobId !== state.jobId) {
        state.jobId = message.jobId;
        state.lastSeq = 0;
        find(state.el, ".bench-log").textContent = "";
      }
      if (message.seq <= state.lastSeq) return;
      state.lastSeq = message.seq;
      if (state.el.getAttribute("data-status") === "creating" || state.el.getAttribute("data-status") === "deleting") {
        setCancelVisible(state, message.jobId);
      }
      appendLog(state, message.data);
    } else if (message.type === "script_complete") {
      if (message.jobId === state.jobId || state.jobId === null) {
        state.jobId = message.jobId;
        var line = "\n[" + message.command + " " + message.state + (message.exitCode === null ? "" : ", exit code " + message.exitCode) + "]\n";
        var log = find(state.el, ".bench-log");
        if (!log.textContent.endsWith(line)) appendLog(state, line);
      }
      setCancelVisible(state, null);
    } else if (message.type === "status_update") {
      if (message.status === "deleted") { removeCard(state); return; }
      setStatus(state, message.status);
      setInfo(state, message);
    }
  }

  function replay(state) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (state.jobId) {
      socket.send(JSON.stringify({ type: "replay", jobId: state.jobId, after: state.lastSeq }));
    } else {
      socket.send(JSON.stringify({ type: "replay", devbenchId: Number(state.el.getAttribute("data-bench-id")), after: 0 }));
    }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/");
    socket.addEventListener("open", function () {
      reconnectDelay = 500;
      connectionState.classList.add("d-none");
      Object.keys(cards).forEach(function (id) { replay(cards[id]); });
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      if (event.code === 4401) { location.href = "/login"; return; }
      connectionState.classList.remove("d-none");
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 10000);
    });
  }

  // --- HTTP actions ---------------------------------------------------------------------------

  function request(method, url, body) {
    var options = { method: method, headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.error || ("Request failed with status " + response.status));
        return data;
      });
    });
  }

  function showError(state, text) {
    var error = find(state.el, ".bench-error");
    error.textContent = text;
    error.classList.remove("d-none");
  }

  var pendingDelete = null;
  var modalEl = document.getElementById("confirm-delete");
  var modal = modalEl && window.bootstrap ? new window.bootstrap.Modal(modalEl) : null;

  document.getElementById("confirm-delete-button").addEventListener("click", function () {
    if (modal) modal.hide();
    var state = pendingDelete;
    pendingDelete = null;
    if (!state) return;
    var id = state.el.getAttribute("data-bench-id");
    request("POST", "/delete-devbench/" + id).catch(function (e) { showError(state, e.message); });
  });

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) return;
    var el = button.closest(".bench-card");
    var state = cardState(el);
    var id = el.getAttribute("data-bench-id");
    if (button.classList.contains("copy-ssh") || button.classList.contains("copy-vnc")) {
      var code = find(el, button.classList.contains("copy-ssh") ? ".bench-ssh" : ".bench-vnc");
      navigator.clipboard.writeText(code.textContent).then(function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      }, function () { showError(state, "Copy failed: select the text and copy it by hand"); });
      return;
    }
    var action = button.getAttribute("data-action");
    if (!action) return;
    find(el, ".bench-error").classList.add("d-none");
    if (action === "delete") {
      pendingDelete = state;
      document.getElementById("confirm-delete-name").textContent = find(el, ".bench-name").textContent;
      if (modal) modal.show(); else if (window.confirm("Delete this DevBench?")) document.getElementById("confirm-delete-button").click();
    } else if (action === "check") {
      button.disabled = true;
      request("GET", "/check-status/" + id)
        .then(function (data) { setStatus(state, data.status); })
        .catch(function (e) { showError(state, e.message); })
        .finally(function () { button.disabled = false; });
    } else if (action === "cancel") {
      if (state.busyJobId) request("POST", "/cancel-job/" + state.busyJobId).catch(function (e) { showError(state, e.message); });
    } else {
      request("POST", "/" + action + "-devbench/" + id).catch(function (e) { showError(state, e.message); });
    }
  });

  // --- create form ----------------------------------------------------------------------------

  var form = document.getElementById("create-form");
  var nameInput = document.getElementById("bench-name");
  var nameError = document.getElementById("bench-name-error");

  function nameProblem(name) {
    if (!name) return "Enter a name for the DevBench.";
    if (name.length > 48) return "At most 48 characters.";
    if (!NAME_RE.test(name)) return "Use only letters, numbers, hyphens and underscores.";
    return "";
  }

  function setNameError(text) {
    nameError.textContent = text;
    nameInput.classList.toggle("is-invalid", Boolean(text));
  }

  nameInput.addEventListener("input", function () {
    setNameError(nameInput.value ? nameProblem(nameInput.value) : "");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = nameInput.value.trim();
    var problem = nameProblem(name);
    setNameError(problem);
    if (problem) return;
    var button = document.getElementById("create-bench");
    button.disabled = true;
    request("POST", "/create-devbench", { name: name })
      .then(function (data) {
        nameInput.value = "";
        var state = addCard(data.devbenchId, name);
        replay(state);
      })
      .catch(function (e) { setNameError(e.message); })
      .finally(function () { button.disabled = false; });
  });

  // --- elapsed time while creating ------------------------------------------------------------

  setInterval(function () {
    Object.keys(cards).forEach(function (id) {
      var state = cards[id];
      var elapsed = find(state.el, ".bench-elapsed");
      if (state.el.getAttribute("data-status") !== "creating") { elapsed.textContent = ""; return; }
      var started = Date.parse(state.el.getAttribute("data-created-at"));
      if (isNaN(started)) return;
      var seconds = Math.max(0, Math.round((Date.now() - started) / 1000));
      elapsed.textContent = (seconds >= 60 ? Math.floor(seconds / 60) + "m " : "") + (seconds % 60) + "s elapsed";
    });
  }, 1000);

  list.querySelectorAll(".bench-card").forEach(function (el) {
    var state = cardState(el);
    setStatus(state, el.getAttribute("data-status"));
  });
  connect();
})();
