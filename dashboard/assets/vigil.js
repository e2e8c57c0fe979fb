/*
 * Vigil panel, 5 of 5: the live feed connection, commands, and the hooks into Dash.
 *
 * The browser opens the live feed on the panel's own origin (/panel/feed), which the panel
 * server relays from the monitor's with the user's token: the token never reaches this page,
 * only an HttpOnly session cookie does (docs/security.md). Messages update the state
 * (vigil-2-state.js) and the painter (vigil-3a…3e-*.js) draws from it. It reconnects forever
 * with backoff, and when the feed is closed or silent for more than 5 s (pings come every
 * 2 s) every tile says CONNECTION LOST, values are greyed and a technical tone sounds: a
 * central display that loses its data must say so loudly (IEC 60601-1-8, docs/panel.md).
 * At hello it fetches each bed's last 15 minutes for the mini-trends (GET /panel/api/readings),
 * and a session's protocol status again when a cuff reading or a checkpoint alarm may have
 * changed it (GET /panel/api/sessions/{id}); the monitor computes, the page only shows.
 *
 * Test hooks: window.vigil.state, document.body.dataset.feed ("up"|"down"),
 * window.vigil.tones, window.vigil.audio (vigil-4-sound.js), window.vigil.fmt.
 *
 * One unit (a little over 500 lines): the commands and the watchdog drive the one
 * connection this closure holds (handle, setDown, scheduleReconnect), which no other
 * script may reach.
 */
(function () {
  "use strict";

  var F = window.VigilFmt;
  var V = window.VigilState;
  var P = window.VigilPaint;
  var Snd = window.VigilSound;
  var S = V.S;
  var SESSION_REFRESH_MS = 60000;
  var SESSION_MIN_GAP_MS = 3000;

  function byId(id) {
    return document.getElementById(id);
  }
  var repaintAll = P.repaintAll;

  // --- Dash hooks ------------------------------------------------------------------------

  function setProps(id, props) {
    if (!byId(id) || !window.dash_clientside || !window.dash_clientside.set_props) return false;
    try {
      window.dash_clientside.set_props(id, props);
      return true;
    } catch (e) {
      return false;
    }
  }

  function requestWardReload() {
    var ward = byId("ward");
    if (!ward || Date.now() - S.lastWardReload < 2000) return;
    S.lastWardReload = Date.now();
    setProps("beds-version", { data: Date.now() });
  }

  function checkWardSet() {
    var ward = byId("ward");
    if (!ward) return;
    var shown = {};
    Array.prototype.forEach.call(ward.querySelectorAll(".tile"), function (t) {
      shown[t.getAttribute("data-bed")] = true;
    });
    var ids = Object.keys(S.beds);
    var same = ids.length === Object.keys(shown).length && ids.every(function (id) { return shown[id]; });
    if (!same) requestWardReload();
  }

  // Dash put new containers in the page (a page change, the ward reloaded): draw into them
  // once React has committed them.
  function containersChanged() {
    var run = function () {
      repaintAll(true);
    };
    if (window.requestAnimationFrame) window.requestAnimationFrame(function () { setTimeout(run, 0); });
    else setTimeout(run, 16);
  }

  function ensureBed(id) {
    id = String(id);
    if (!S.beds[id]) {
      V.ingestBed({ id: id });
      requestWardReload();
    }
    return S.beds[id];
  }

  function currentBedPage() {
    var bp = byId("bed-page");
    return bp ? bp.getAttribute("data-bed") : null;
  }

  function refreshBedPage(bedId) {
    if (currentBedPage() !== bedId || Date.now() - S.lastBedRefresh < 1000) return;
    S.lastBedRefresh = Date.now();
    setProps("bed-refresh", { data: Date.now() });
  }

  function extendTrend(msg) {
    var wrap = byId("trend-wrap");
    if (!wrap || !wrap.classList.contains("live") || wrap.getAttribute("data-bed") !== String(msg.bed)) return;
    var t = F.parseTs(msg.ts);
    if (t === null) return;
    var trace = F.constants().trace;
    var x = F.localX(t);
    var xs = [], ys = [], idx = [];
    Object.keys(msg.values || {}).forEach(function (k) {
      if (trace[k] === undefined || typeof msg.values[k] !== "number") return;
      xs.push([x]);
      ys.push([msg.values[k]]);
      idx.push(trace[k]);
    });
    if (idx.length) setProps("trend", { extendData: [{ x: xs, y: ys }, idx, F.constants().max_points] });
  }

  // --- data the feed does not carry: recent history, a session's fresh protocol status ----

  function getJson(path) {
    return fetch(path, {
      credentials: "same-origin",
      headers: { "X-Vigil-Session": S.session },
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  function loadHistory(bed) {
    if (bed.histLoaded || bed.histLoading) return;
    bed.histLoading = true;
    var since = new Date(V.serverNow() - F.constants().trend_window_s * 1000).toISOString();
    getJson("/panel/api/readings?bed=" + encodeURIComponent(bed.id) + "&since=" + encodeURIComponent(since) + "&limit=5000")
      .then(function (body) {
        var cur = S.beds[bed.id] || bed;
        ((body && body.readings) || []).forEach(function (r) {
          V.addHistory(cur, r);
        });
        cur.histLoaded = true;
        P.drawTrend(cur);
      })
      .catch(function () {
        /* the trend fills from the live feed instead */
      })
      .then(function () {
        bed.histLoading = false;
      });
  }

  function refreshSession(bed, force) {
    var s = bed.session;
    if (!s || !s.id || bed.sessionFetching) return;
    var now = Date.now();
    if (!force && now - bed.sessionFetched < SESSION_REFRESH_MS) return;
    if (now - bed.sessionFetched < SESSION_MIN_GAP_MS) return;
    bed.sessionFetched = now;
    bed.sessionFetching = true;
    getJson("/panel/api/sessions/" + encodeURIComponent(s.id))
      .then(function (body) {
        var cur = S.beds[bed.id];
        if (cur && body && cur.session && cur.session.id === body.id) {
          V.setSession(cur, body);
          P.paintBed(cur);
        }
      })
      .catch(function () {
        /* shown as it was; the next change or minute asks again */
      })
      .then(function () {
        bed.sessionFetching = false;
      });
  }

  // --- feed --------------------------------------------------------------------------------

  function feedUrl() {
    var cfg = byId("vigil-config");
    var path = (cfg && cfg.getAttribute("data-feed-path")) || "/panel/feed";
    return (
      (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path +
      "?session=" + encodeURIComponent(S.session)
    );
  }

  function setDown() {
    var was = S.feedUp;
    if (S.feedUp || S.downSince === null) S.downSince = Date.now();
    S.feedUp = false;
    if (was) {
      P.announce("Connection to the monitor lost: values are not live");
      // A fresh loss is a new event: its tone sounds at the next tick, not up to 10 s later.
      S.sound.techLast = 0;
    }
    repaintAll();
  }

  function handle(msg) {
    if (!msg || typeof msg !== "object") return;
    var st = F.parseTs(msg.server_time);
    if (st !== null) S.offsetMs = st - Date.now();
    switch (msg.type) {
      case "batch":
        // Several messages in one frame (the relay asks the monitor for them), in order.
        (msg.messages || []).forEach(handle);
        break;
      case "hello":
        // Each bed comes fresh (ingestBed keeps its fetched trend); beds gone are dropped.
        var seen = {};
        (msg.beds || []).forEach(function (b) {
          seen[String(b.id)] = true;
          V.ingestBed(b);
        });
        Object.keys(S.beds).forEach(function (k) {
          if (!seen[k]) delete S.beds[k];
        });
        S.degraded = (msg.health && msg.health.failing) || [];
        if (S.downSince !== null && Date.now() - S.downSince > 5000) {
          // Readings of the outage never came through the feed: fetch the trends again.
          Object.keys(S.beds).forEach(function (k) {
            S.beds[k].histLoaded = false;
          });
        }
        if (!S.feedUp) P.announce("Connected to the monitor: values are live");
        S.feedUp = true;
        S.downSince = null;
        S.attempts = 0;
        checkWardSet();
        Object.keys(S.beds).forEach(function (k) {
          loadHistory(S.beds[k]);
          S.beds[k].sessionFetched = Date.now();
        });
        repaintAll(true);
        break;
      case "reading": {
        var bed = ensureBed(msg.bed);
        V.applyReading(bed, msg);
        P.paintBed(bed);
        extendTrend(msg);
        // A cuff reading may do a due BP check or change discharge: ask the monitor.
        if (msg.source === "nibp" || (msg.values && typeof msg.values.sbp === "number")) refreshSession(bed, true);
        break;
      }
      case "alarm": {
        var a = msg.alarm || {};
        var b = ensureBed(a.bed);
        var isNew = !b.alarms[a.id];
        if (V.isActive(a)) b.alarms[a.id] = a;
        else delete b.alarms[a.id];
        if (a.signal === "checkpoint") refreshSession(b, true);
        P.paintBed(b);
        P.renderAlarms();
        if (isNew && V.isActive(a)) Snd.tick(true);
        break;
      }
      case "session": {
        var s = msg.session || {};
        var sb = ensureBed(s.bed);
        V.setSession(sb, s);
        sb.sessionFetched = Date.now();
        P.paintBed(sb);
        refreshBedPage(sb.id);
        break;
      }
      case "health":
        S.degraded = msg.failing || [];
        if (S.degraded.length) Snd.tick(true);
        repaintAll();
        break;
      case "bye":
        if (S.ws) S.ws.close();
        break;
      default:
        break;
    }
  }

  function disconnect() {
    S.gen++;
    if (S.retryTimer) clearTimeout(S.retryTimer);
    S.retryTimer = null;
    if (S.ws) {
      try {
        S.ws.close();
      } catch (e) {
        /* already closed */
      }
    }
    S.ws = null;
    S.connected = false;
    setDown();
  }

  function scheduleReconnect() {
    if (!S.user || S.retryTimer) return;
    var base = Math.min(5000, 500 * Math.pow(2, S.attempts));
    S.attempts = Math.min(S.attempts + 1, 10);
    var delay = base * (0.75 + Math.random() * 0.5);
    S.retryTimer = setTimeout(function () {
      S.retryTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    disconnect();
    if (!S.user) return;
    var gen = S.gen;
    var ws;
    try {
      ws = new WebSocket(feedUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    S.ws = ws;
    ws.onopen = function () {
      if (gen !== S.gen) return;
      S.connected = true;
      S.lastMsg = Date.now();
    };
    ws.onmessage = function (ev) {
      if (gen !== S.gen) return;
      S.lastMsg = Date.now();
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      handle(msg);
    };
    ws.onclose = function (ev) {
      if (gen !== S.gen) return;
      S.connected = false;
      S.ws = null;
      if (ev && ev.code === 1008) {
        // The monitor refused the login (logged out, expired, user disabled): retrying
        // cannot work. Back to the login page, saying why.
        loginEnded();
        return;
      }
      setDown();
      scheduleReconnect();
    };
  }

  function loginEnded() {
    S.user = null;
    disconnect();
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("auth", { data: { ended: true } });
    }
  }

  // Dash calls this at each login change and each page change (app.py passes the path too).
  function setContext(auth) {
    var user = auth && auth.username ? auth.username : null;
    var session = (auth && auth.session) || "";
    if (user !== S.user || session !== S.session) {
      S.user = user;
      S.session = session;
      S.attempts = 0;
      if (user) connect();
      else disconnect();
    }
    containersChanged();
  }

  // --- commands (same-origin panel endpoints forward to the monitor with the token) ------
  // The session cookie goes with them (same origin); the panel server adds the token.

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Vigil-Session": S.session },
      body: JSON.stringify(body || {}),
    });
  }

  function ackAlarm(id, button) {
    if (button) button.disabled = true;
    post("/panel/api/alarms/" + encodeURIComponent(id) + "/ack", {})
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body && body.detail ? body.detail : "HTTP " + r.status);
          if (body && body.id) handle({ type: "alarm", alarm: body });
        });
      })
      .catch(function (e) {
        showError("Acknowledge failed: " + e.message);
      })
      .then(function () {
        if (button) button.disabled = false;
      });
  }

  function pauseAudio(bedId) {
    // The pause the button offers: the clinic's audio_pause_s, as its label says.
    post("/panel/api/beds/" + encodeURIComponent(bedId) + "/audio-pause", { seconds: F.constants().audio_pause_s })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body && body.detail ? body.detail : "HTTP " + r.status);
          // The monitor answers with the alarms it paused; only those go quiet.
          var paused = (body && body.alarms) || [];
          paused.forEach(function (a) {
            handle({ type: "alarm", alarm: a });
          });
          if (!paused.length) showError("Nothing to pause: no unacknowledged alarm on this bed.");
        });
      })
      .catch(function (e) {
        showError("Audio pause failed: " + e.message);
      });
  }

  function openReport(button) {
    var sid = button.getAttribute("data-session");
    var kind = button.getAttribute("data-kind");
    // Open the tab now, inside the click: a window.open after a slow report (more than the
    // browser's ~5 s of user activation) is silently blocked as a popup.
    var win = null;
    // Pages (the session report, the printable REMS form) open in a tab; data downloads.
    var isPage = kind === "html" || kind === "rems";
    if (isPage) {
      win = window.open("", "_blank");
      if (win) win.document.title = "Loading report\u2026";
    }
    fetch("/panel/api/sessions/" + encodeURIComponent(sid) + "/report/" + kind, {
      credentials: "same-origin",
      headers: { "X-Vigil-Session": S.session },
    })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.blob();
      })
      .then(function (blob) {
        var url = URL.createObjectURL(blob);
        if (isPage) {
          if (win && !win.closed) win.location.href = url;
          else window.open(url, "_blank");
        } else {
          var a = document.createElement("a");
          a.href = url;
          a.download = "session-" + sid + (kind === "csv" ? ".csv" : ".fhir.json");
          document.body.appendChild(a);
          a.click();
          a.remove();
        }
        setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
      })
      .catch(function (e) {
        if (win && !win.closed) win.close();
        showError("Report failed: " + e.message);
      });
  }

  function showError(text) {
    var box = byId("alarm-list");
    if (!box) return;
    var el = box.querySelector(".alarm-error");
    if (!el) {
      el = document.createElement("div");
      el.className = "alarm-error";
      box.insertBefore(el, box.firstChild);
    }
    el.textContent = text;
    setTimeout(function () { el.remove(); }, 8000);
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!(t instanceof Element)) return;
    var btn = t.closest("button");
    if (!btn) return;
    if (btn.id === "sound-toggle") Snd.toggle();
    else if (btn.id === "order-toggle") {
      S.alarmsFirst = !S.alarmsFirst;
      repaintAll();
      P.announce(S.alarmsFirst ? "Beds with alarms or overdue checks first" : "Beds in bed order");
    } else if (btn.classList.contains("ack-btn")) ackAlarm(btn.getAttribute("data-alarm-id"), btn);
    else if (btn.classList.contains("pause-btn")) pauseAudio(btn.getAttribute("data-bed"));
    else if (btn.classList.contains("report-button")) openReport(btn);
  });

  // --- watchdog and ticker -----------------------------------------------------------------

  var ticks = 0;
  setInterval(function () {
    if (S.user && S.connected && Date.now() - S.lastMsg > F.constants().feed_silence_s * 1000) {
      // Silent feed: treat as lost and force a fresh connection.
      setDown();
      if (S.ws) {
        try {
          S.ws.close();
        } catch (e) {
          /* ignore */
        }
      }
    }
    if (S.user && !S.connected && !S.ws && !S.retryTimer) scheduleReconnect();
    ticks++;
    // Each step on its own: a drawing fault must never stop the sound or the watchdog.
    try {
      // Values tick every second; the mini-trends scroll every 5 s (a pixel is ~2 s).
      repaintAll(ticks % 5 === 0);
    } catch (e) {
      if (window.console) console.error("vigil: repaint failed", e);
    }
    if (S.feedUp) {
      Object.keys(S.beds).forEach(function (k) {
        refreshSession(S.beds[k], false);
      });
    }
    Snd.tick(false);
  }, 1000);

  window.vigil = {
    state: S,
    tones: Snd.tones,
    audio: Snd.audio,
    fmt: F,
    setContext: setContext,
    containersChanged: containersChanged,
    reconnect: connect,
    repaint: repaintAll,
    handle: handle,
  };
})();
