// The dashboard: bench cards fed by the WebSocket (replaying stored logs on load), the create
// form with inline validation, and the bench actions. The server renders the cards; htmx swaps
// in its rendering of a new bench's card (/dashboard/cards/ID) or of the whole list after live
// updates were cut (/dashboard/cards), and this script keeps them current between the two.
(function () {
  "use strict";

  // htmx starts when the document is parsed, after this script: it adds no inline <style> for
  // request indicators, which the dashboard does not use.
  window.htmx.config.includeIndicatorStyles = false;

  var BUSY = { creating: true, deleting: true };
  var csrfToken = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var list = document.getElementById("bench-list");
  var template = document.getElementById("bench-card-template");
  var emptyState = document.getElementById("empty-state");
  var connectionState = document.getElementById("connection-state");
  var socket = null;
  var reconnectDelay = 500;
  var connectedBefore = false;
  var cards = {}; // bench id -> {el, jobId, lastSeq, busyJobId, version}
  var orphans = {}; // bench id -> messages that arrived before the bench's card

  function find(el, selector) { return el.querySelector(selector); }
  function localTimes(root) { if (window.DevBench && window.DevBench.localTimes) window.DevBench.localTimes(root); }

  // --- cards ----------------------------------------------------------------------------------

  function cardState(el) {
    var id = el.getAttribute("data-bench-id");
    if (!cards[id]) {
      var jobId = el.getAttribute("data-latest-job-id");
      cards[id] = {
        el: el, jobId: jobId ? Number(jobId) : null, lastSeq: 0, pending: {}, pendingComplete: null, gapTimer: null,
        busyJobId: null, version: 0, lastStatus: null, since: null,
      };
    }
    return cards[id];
  }

  function labelCard(el) {
    var name = find(el, ".bench-name").textContent.trim();
    el.setAttribute("aria-label", "DevBench " + name);
    find(el, ".bench-actions").setAttribute("aria-label", "Actions for " + name);
    find(el, ".bench-log").setAttribute("aria-label", "Log of " + name);
    el.querySelectorAll(".bench-actions [data-action]").forEach(function (button) {
      button.setAttribute("aria-label", button.textContent.trim() + " " + name);
    });
  }

  function setStatus(state, status) {
    if (state.el.getAttribute("data-status") !== status) state.since = null;
    var badge = find(state.el, ".bench-status");
    badge.textContent = status;
    badge.className = "badge bench-status status-" + status;
    state.el.setAttribute("data-status", status);
    var busy = Boolean(BUSY[status]);
    find(state.el, ".bench-progress").classList.toggle("d-none", status !== "creating");
    find(state.el, '[data-action="cancel"]').classList.toggle("d-none", !busy);
    if (!busy) state.busyJobId = null;
    state.el.querySelectorAll(".bench-actions [data-action]").forEach(function (button) {
      var action = button.getAttribute("data-action");
      button.disabled = action === "cancel" ? !state.busyJobId : busy;
    });
    updateElapsed(state);
  }

  function setInfo(state, message) {
    var host = state.el.getAttribute("data-ssh-host");
    var user = state.el.getAttribute("data-ssh-user");
    if (message.sshInfo && host) {
      find(state.el, ".bench-ssh").textContent = "ssh -p " + message.sshInfo + " " + user + "@" + host;
      find(state.el, ".copy-ssh").classList.remove("d-none");
    }
    if (message.vncInfo && host) {
      find(state.el, ".bench-vnc").textContent = host + ":" + message.vncInfo;
      find(state.el, ".copy-vnc").classList.remove("d-none");
    }
    showError(state, message.error || "");
  }

  function setBusyJob(state, jobId) {
    state.busyJobId = jobId;
    find(state.el, '[data-action="cancel"]').disabled = !jobId;
  }

  function appendLog(state, text) {
    var log = find(state.el, ".bench-log");
    var nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(document.createTextNode(text));
    if (nearBottom) log.scrollTop = log.scrollHeight;
    var match, progress = null, re = /^PROGRESS=(\d{1,3})\s*$/gm;
    while ((match = re.exec(text)) !== null) progress = Math.min(100, Number(match[1]));
    if (progress !== null) setProgress(state, progress);
  }

  function setProgress(state, percent) {
    var bar = find(state.el, ".bench-progress");
    bar.setAttribute("aria-valuenow", String(percent));
    var inner = find(bar, ".progress-bar");
    inner.style.width = percent + "%";
    inner.textContent = percent + "%";
  }

  function clearLog(state) {
    find(state.el, ".bench-log").textContent = "";
    setProgress(state, 0);
  }

  // Add a card for a bench created here, from the template (its name only) until the server's
  // card replaces it.
  function addCard(benchId, name) {
    var el = template.content.cloneNode(true).querySelector(".bench-card");
    el.setAttribute("data-bench-id", String(benchId));
    el.setAttribute("data-created-at", new Date().toISOString());
    find(el, ".bench-name").textContent = name;
    // hx-preserve finds the progress bar and the log by their ids when the server's card comes.
    find(el, ".bench-progress").id = "bench-progress-" + benchId;
    find(el, ".bench-log-details").id = "bench-log-" + benchId;
    list.appendChild(el);
    return adoptCard(el);
  }

  // Take a card the page did not show yet into the live updates.
  function adoptCard(el) {
    emptyState.classList.add("d-none");
    updateCount();
    labelCard(el);
    localTimes(el);
    var state = cardState(el);
    setStatus(state, el.getAttribute("data-status") || "creating");
    var benchId = el.getAttribute("data-bench-id");
    var early = orphans[benchId] || [];
    delete orphans[benchId];
    early.forEach(function (message) { handle(message); });
    return state;
  }

  function removeCard(state) {
    delete cards[state.el.getAttribute("data-bench-id")];
    state.el.remove();
    updateCount();
    if (!list.querySelector(".bench-card")) emptyState.classList.remove("d-none");
  }

  function updateCount() {
    document.getElementById("bench-count").textContent = String(list.querySelectorAll(".bench-card").length);
  }

  function byBenchId(id) {
    var el = list.querySelector('[data-bench-id="' + id + '"]');
    return el ? cardState(el) : null;
  }

  // After htmx swapped in the server's rendering of some cards: bind each new element to its
  // card's state (the log and the progress bar are the same elements, kept by hx-preserve), take
  // in cards the page did not show and forget those the server no longer has. ``versions`` holds
  // the swapped cards' versions when the request was sent: a live update that came meanwhile is
  // newer than the server's rendering and is shown again.
  function bindCards(versions) {
    var shown = {};
    list.querySelectorAll(".bench-card").forEach(function (el) {
      var id = el.getAttribute("data-bench-id");
      shown[id] = true;
      var state = cards[id];
      if (!state) { replay(adoptCard(el)); return; }
      if (state.el === el) return;
      state.el = el;
      labelCard(el);
      localTimes(el);
      var update = id in versions && state.version !== versions[id] ? state.lastStatus : null;
      setStatus(state, update ? update.status : el.getAttribute("data-status"));
      if (update && update.type === "status_update") setInfo(state, update);
    });
    Object.keys(cards).forEach(function (id) { if (!shown[id]) delete cards[id]; });
    updateCount();
    emptyState.classList.toggle("d-none", Boolean(list.querySelector(".bench-card")));
  }

  function versionsOf(ids) {
    var versions = {};
    ids.forEach(function (id) { versions[id] = cards[id].version; });
    return versions;
  }

  // The list as the server renders it now: new benches' cards, and the current status after the
  // live updates were interrupted.
  function syncFromServer() {
    var versions = versionsOf(Object.keys(cards));
    return htmx.ajax("GET", "/dashboard/cards", { target: list, swap: "innerHTML" })
      .then(function () { bindCards(versions); });
  }

  // A new bench's card as the server renders it (with its host), in place of the template's.
  function loadCard(state) {
    var id = state.el.getAttribute("data-bench-id");
    var versions = versionsOf([id]);
    return htmx.ajax("GET", "/dashboard/cards/" + id, { target: state.el, swap: "outerHTML" })
      .then(function () { bindCards(versions); });
  }

  // A signed-out session is sent to /login: go there rather than show the sign-in form as cards.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.responseURL && new URL(xhr.responseURL).pathname === "/login") {
      event.detail.shouldSwap = false;
      location.href = "/login";
    }
  });

  var syncTimer = null;
  var creating = 0;
  function scheduleSync() {
    if (creating || syncTimer) return;
    syncTimer = setTimeout(function () {
      syncTimer = null;
      if (!creating) syncFromServer().catch(function () { /* the next message retries */ });
    }, 500);
  }

  // --- WebSocket ------------------------------------------------------------------------------

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message.type === "error") { console.warn("DevBench:", message.error); return; }
    handle(message);
  }

  function handle(message) {
    var state = byBenchId(message.devbenchId);
    if (!state) {
      // A bench this page has no card for yet: created here (the POST has not answered yet) or
      // elsewhere (another tab, the API). Keep its messages until its card is added.
      var early = orphans[message.devbenchId] = orphans[message.devbenchId] || [];
      if (early.length < 1000) early.push(message);
      scheduleSync();
      return;
    }
    if (message.type === "script_output" || message.type === "script_complete") {
      // A newer job's log replaces the last one; an older job's late messages are ignored.
      if (state.jobId === null || message.jobId > state.jobId) startJob(state, message.jobId);
      if (message.jobId !== state.jobId) return;
      if (message.type === "script_output") {
        if (message.seq <= state.lastSeq) return;
        if (BUSY[state.el.getAttribute("data-status")]) setBusyJob(state, message.jobId);
        state.pending[message.seq] = message;
      } else {
        state.pendingComplete = message;
        setBusyJob(state, null);
        if (/snapshot|restore/.test(message.command)) loadCard(state).catch(function () { /* next sync */ });
      }
      flushOutput(state);
    } else if (message.type === "status_update") {
      state.version += 1;
      state.lastStatus = message;
      if (message.status === "deleted") { removeCard(state); return; }
      setStatus(state, message.status);
      setInfo(state, message);
    }
  }

  // A job's chunks are numbered 1, 2, 3…; live ones can overtake the stored ones a replay sends
  // (the socket hears live events from the moment it connects). Show them strictly in order: hold
  // a chunk that arrives early until the ones before it are there, and ask again for a gap.
  function startJob(state, jobId) {
    state.jobId = jobId;
    state.lastSeq = 0;
    state.pending = {};
    state.pendingComplete = null;
    clearLog(state);
  }

  function flushOutput(state) {
    var next;
    while ((next = state.pending[state.lastSeq + 1])) {
      delete state.pending[state.lastSeq + 1];
      state.lastSeq += 1;
      appendLog(state, next.data);
    }
    var done = state.pendingComplete;
    if (done && done.jobId === state.jobId && (done.seq || 0) <= state.lastSeq) {
      state.pendingComplete = null;
      var line = "[" + done.command + " " + done.state + (done.exitCode === null ? "" : ", exit code " + done.exitCode) + "]\n";
      var log = find(state.el, ".bench-log");
      if (!log.textContent.endsWith(line)) appendLog(state, (log.textContent && !log.textContent.endsWith("\n") ? "\n" : "") + line);
    }
    var waiting = Object.keys(state.pending).length > 0 || state.pendingComplete !== null;
    if (waiting && !state.gapTimer) {
      state.gapTimer = setTimeout(function () {
        state.gapTimer = null;
        if (Object.keys(state.pending).length || state.pendingComplete) replay(state);
      }, 1500);
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
      var replayAll = function () { Object.keys(cards).forEach(function (id) { replay(cards[id]); }); };
      if (connectedBefore) {
        // Status changes sent while we were away are not replayed: ask the server for them.
        syncFromServer().catch(function () { /* the next update corrects it */ }).then(replayAll);
      } else {
        replayAll();
      }
      connectedBefore = true;
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
    }, function () {
      throw new Error("DevBench did not answer; check your connection and try again");
    });
  }

  function showError(state, text) {
    var error = find(state.el, ".bench-error");
    error.textContent = text;
    error.classList.toggle("d-none", !text);
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
    // The card stays until the server reports the VM deleted on its host.
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
      navigator.clipboard.writeText(code.textContent.trim()).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      }, function () { showError(state, "Copy failed: select the text and copy it by hand"); });
      return;
    }
    var action = button.getAttribute("data-action");
    if (!action) return;
    showError(state, "");
    if (action === "delete") {
      pendingDelete = state;
      document.getElementById("confirm-delete-name").textContent = find(el, ".bench-name").textContent;
      if (modal) modal.show(); else if (window.confirm("Delete this DevBench?")) document.getElementById("confirm-delete-button").click();
    } else if (action === "check") {
      button.disabled = true;
      button.textContent = "Checking…";
      request("GET", "/check-status/" + id)
        .then(function (data) {
          state.version += 1;
          state.lastStatus = { status: data.status };
          setStatus(state, data.status);
        })
        .catch(function (e) { showError(state, e.message); })
        .finally(function () {
          button.textContent = "Check status";
          button.disabled = Boolean(BUSY[el.getAttribute("data-status")]);
        });
    } else if (action === "snapshot" || action === "restore-snapshot" || action === "delete-snapshot") {
      snapshotAction(state, id, action, button);
    } else if (action === "cancel") {
      if (state.busyJobId) request("POST", "/cancel-job/" + state.busyJobId).catch(function (e) { showError(state, e.message); });
    } else {
      request("POST", "/" + action + "-devbench/" + id).catch(function (e) { showError(state, e.message); });
    }
  });

  // Snapshots go through the JSON API; the job's log follows on the card, and the card is
  // rendered again when the job ends (its list of snapshots with it).
  function snapshotAction(state, id, action, button) {
    var base = "/api/v1/benches/" + id + "/snapshots/";
    var call;
    if (action === "snapshot") {
      var input = find(state.el, ".snapshot-name");
      call = request("POST", base, { name: input.value.trim() }).then(function () { input.value = ""; });
    } else {
      var name = encodeURIComponent(button.getAttribute("data-snapshot"));
      call = action === "restore-snapshot" ? request("POST", base + name + "/restore/") : request("DELETE", base + name + "/");
    }
    call.catch(function (e) { showError(state, e.message); });
  }

  // --- create form ----------------------------------------------------------------------------

  var form = document.getElementById("create-form");
  var nameInput = document.getElementById("bench-name");
  var nameError = document.getElementById("bench-name-error");

  // The rule comes from the input's maxlength and pattern, which the server renders from its own.
  var nameMax = nameInput.maxLength;
  var nameRe = new RegExp("^(?:" + nameInput.getAttribute("pattern") + ")$", "u");

  function nameProblem(name) {
    if (!name) return "Enter a name for the DevBench.";
    if (nameMax > 0 && name.length > nameMax) return "At most " + nameMax + " characters.";
    if (!nameRe.test(name)) return "Use only letters, numbers, hyphens and underscores.";
    return "";
  }

  function setNameError(text) {
    nameError.textContent = text;
    nameInput.classList.toggle("is-invalid", Boolean(text));
    nameInput.setAttribute("aria-invalid", text ? "true" : "false");
  }

  nameInput.addEventListener("input", function () {
    setNameError(nameInput.value ? nameProblem(nameInput.value) : "");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = nameInput.value.trim();
    var problem = nameProblem(name);
    setNameError(problem);
    if (problem) { nameInput.focus(); return; }
    var button = document.getElementById("create-bench");
    button.disabled = true;
    creating += 1;
    var body = { name: name };
    ["image", "plan"].forEach(function (field) {
      var select = document.getElementById("bench-" + field);
      if (select && select.value) body[field] = select.value;
    });
    request("POST", "/create-devbench", body)
      .then(function (data) {
        nameInput.value = "";
        var id = String(data.devbenchId);
        var state = byBenchId(id);
        if (!state) {
          state = addCard(id, name);
          replay(state);
        }
        return loadCard(state).catch(function () { /* the template's card stays until the next sync */ });
      })
      .catch(function (e) { setNameError(e.message); nameInput.focus(); })
      .finally(function () { creating -= 1; button.disabled = false; });
  });

  // --- elapsed time while creating or deleting ------------------------------------------------

  function updateElapsed(state) {
    var elapsed = find(state.el, ".bench-elapsed");
    var status = state.el.getAttribute("data-status");
    if (!BUSY[status]) { elapsed.textContent = ""; return; }
    if (!state.since) {
      var created = Date.parse(state.el.getAttribute("data-created-at"));
      state.since = status === "creating" && !isNaN(created) ? created : Date.now();
    }
    var seconds = Math.max(0, Math.floor((Date.now() - state.since) / 1000));
    var text = (seconds >= 60 ? Math.floor(seconds / 60) + " min " : "") + (seconds % 60) + " s";
    elapsed.textContent = text + " elapsed";
  }

  setInterval(function () {
    Object.keys(cards).forEach(function (id) {
      var state = cards[id];
      if (!BUSY[state.el.getAttribute("data-status")]) state.since = null;
      updateElapsed(state);
    });
  }, 1000);

  list.querySelectorAll(".bench-card").forEach(function (el) {
    labelCard(el);
    setStatus(cardState(el), el.getAttribute("data-status"));
  });
  connect();
})();
