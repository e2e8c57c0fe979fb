/*
 * Vigil panel: live feed client.
 *
 * The browser opens the live feed on the panel's own origin (/panel/feed), which the panel
 * server relays from the monitor's with the user's token: the token never reaches this page,
 * only an HttpOnly session cookie does (docs/security.md). It repaints the tiles the server rendered (same ids, see docs/panel.md). It reconnects
 * forever with backoff, and when the feed is closed or silent for more than 5 s (pings come
 * every 2 s) every tile says CONNECTION LOST, values are greyed and a technical tone sounds:
 * a central display that loses its data must say so loudly (IEC 60601-1-8, docs/panel.md).
 *
 * Test hooks: window.vigil.state, document.body.dataset.feed ("up"|"down"),
 * window.vigil.tones (last tones due, sound on or off: {kind, loud, at, bed, alarm}) and
 * window.vigil.audio (what was actually scheduled on the AudioContext, sound on only).
 */
(function () {
  "use strict";

  var SILENCE_MS = 5000;
  var YEAR_S = 365.25 * 86400;
  var STALE_S = { hr: 10, pr: 10, spo2: 10, rr: 10, sbp: 900, dbp: 900, map: 900 };
  var RANK = { low: 1, medium: 2, high: 3 };
  var TRACE = { hr: 0, spo2: 1, rr: 2, sbp: 3, dbp: 4, map: 5 };
  var MAX_POINTS = 12000;
  var LABEL = { hr: "HR", spo2: "SpO2", rr: "RR", sbp: "SYS", dbp: "DIA", map: "MAP" };

  var S = {
    user: null, // who is logged in (a name, not a secret); null: nobody
    session: "", // the tag of this tab's panel session (not a secret), sent with every command
    path: "/",
    ws: null,
    gen: 0,
    connected: false,
    feedUp: false,
    lastMsg: 0,
    attempts: 0,
    retryTimer: null,
    offsetMs: 0,
    downSince: Date.now(),
    beds: {},
    degraded: [],
    lastWardReload: 0,
    lastBedRefresh: 0,
    sound: { on: false, ctx: null, last: {}, lowPlayed: {}, techLast: 0 },
  };
  var tones = [];
  var audioLog = [];

  function byId(id) {
    return document.getElementById(id);
  }
  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }
  function setAttr(el, name, value) {
    if (el && el.getAttribute(name) !== value) el.setAttribute(name, value);
  }
  function serverNow() {
    return Date.now() + S.offsetMs;
  }
  function parseTs(ts) {
    var t = typeof ts === "string" ? Date.parse(ts) : NaN;
    return isNaN(t) ? null : t;
  }
  function fmtClock(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "--:--";
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600),
      m = Math.floor((s % 3600) / 60),
      sec = s % 60;
    var mm = (m < 10 ? "0" : "") + m,
      ss = (sec < 10 ? "0" : "") + sec;
    return h ? h + ":" + mm + ":" + ss : mm + ":" + ss;
  }
  function fmtAge(a) {
    if (a === null || a === undefined) return "";
    a = Math.max(0, a);
    if (a < 60) return Math.floor(a) + " s";
    if (a < 3600) return Math.floor(a / 60) + " min";
    // A value from another day (a store-and-forward gateway, a wrong device clock) must read
    // as old at a glance, not as "135729 h".
    if (a < 86400) return Math.floor(a / 3600) + " h " + Math.floor((a % 3600) / 60) + " min";
    if (a < YEAR_S) return Math.floor(a / 86400) + " d";
    return Math.floor(a / YEAR_S) + " y";
  }
  function fmtValue(v) {
    return typeof v === "number" && isFinite(v) ? String(Math.round(v)) : "--";
  }
  function localX(ms) {
    var d = new Date(ms);
    function p(n, w) {
      n = String(n);
      while (n.length < (w || 2)) n = "0" + n;
      return n;
    }
    return (
      d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3)
    );
  }

  // --- model -----------------------------------------------------------------------------

  function ingestBed(b) {
    var bed = {
      id: String(b.id),
      label: b.label || String(b.id),
      devices: b.devices || [],
      session: null,
      sessionAt: Date.now(),
      latest: {},
      alarms: {},
    };
    setSession(bed, b.session);
    var latest = b.latest || {};
    Object.keys(latest).forEach(function (k) {
      var e = latest[k] || {};
      var ts = parseTs(e.ts);
      if (ts === null && typeof e.age_s === "number") ts = serverNow() - e.age_s * 1000;
      bed.latest[k] = { value: e.value, ts: ts, device_id: e.device_id, source: e.source };
    });
    (b.alarms || []).forEach(function (a) {
      if (isActive(a)) bed.alarms[a.id] = a;
    });
    S.beds[bed.id] = bed;
    return bed;
  }
  function ensureBed(id) {
    id = String(id);
    if (!S.beds[id]) {
      ingestBed({ id: id });
      requestWardReload();
    }
    return S.beds[id];
  }
  function setSession(bed, s) {
    if (!s || s.phase === "ended" || s.ended_at) {
      if (!s || !bed.session || bed.session.id === s.id) bed.session = null;
    } else {
      bed.session = s;
    }
    bed.sessionAt = Date.now();
  }
  function isActive(a) {
    return a && a.state !== "ended" && !a.ended_at;
  }
  function alarmKey(a) {
    return [
      -(RANK[a.priority] || 0),
      a.acknowledged_at ? 1 : 0,
      a.escalated ? 0 : 1,
      a.kind === "physiological" ? 0 : 1,
      a.started_at || "",
    ];
  }
  function cmpAlarms(a, b) {
    var ka = alarmKey(a),
      kb = alarmKey(b);
    for (var i = 0; i < ka.length; i++) {
      if (ka[i] < kb[i]) return -1;
      if (ka[i] > kb[i]) return 1;
    }
    return 0;
  }
  function activeAlarms(bed) {
    return Object.keys(bed.alarms)
      .map(function (k) {
        return bed.alarms[k];
      })
      .filter(isActive)
      .sort(cmpAlarms);
  }
  // Audio pause belongs to the alarms that existed when it was asked for (the monitor's rule):
  // an alarm that starts later on the same bed sounds, and so does every other bed.
  function alarmPausedMs(a) {
    var t = parseTs(a && a.audio_paused_until);
    return t === null ? 0 : Math.max(0, t - serverNow());
  }
  function bedPausedMs(bed) {
    var ms = 0;
    activeAlarms(bed).forEach(function (a) {
      ms = Math.max(ms, alarmPausedMs(a));
    });
    return ms;
  }
  function infusionElapsed(bed) {
    var s = bed.session;
    if (!s) return null;
    var e = typeof s.infusion_elapsed_s === "number" ? s.infusion_elapsed_s : 0;
    if (s.phase === "infusion" && s.infusion_running) e += (Date.now() - bed.sessionAt) / 1000;
    return e;
  }
  function phaseText(bed) {
    var s = bed.session;
    if (!s) return "No patient";
    if (s.phase === "baseline") return "Baseline";
    if (s.phase === "recovery") return "Recovery (infused " + fmtClock(s.infusion_elapsed_s) + ")";
    if (s.phase === "infusion") {
      var t = "Infusion " + fmtClock(infusionElapsed(bed));
      if (s.infusion_planned_s) t += " / " + fmtClock(s.infusion_planned_s);
      if (!s.infusion_running) t += " (paused)";
      return t;
    }
    return s.phase || "No patient";
  }
  function alarmText(a) {
    if (a.kind === "technical" && a.signal === "device") return "NO DATA from " + (a.device_id || "device");
    var c = a.condition || a.signal || "alarm";
    return typeof a.value === "number" ? c + " (" + fmtValue(a.value) + ")" : c;
  }

  // --- painting --------------------------------------------------------------------------

  function paintVital(bed, key, level) {
    var el = byId("tile-" + bed.id + "-" + key);
    if (!el) return;
    var value, age;
    if (key === "bp") {
      var sbp = bed.latest.sbp,
        dbp = bed.latest.dbp,
        mp = bed.latest.map;
      var anchor = sbp || mp || dbp;
      if (!anchor) {
        value = "--/--";
        age = null;
      } else {
        value = fmtValue(sbp && sbp.value) + "/" + fmtValue(dbp && dbp.value);
        if (mp) value += " (" + fmtValue(mp.value) + ")";
        age = anchor.ts === null ? null : (serverNow() - anchor.ts) / 1000;
      }
      var staleBp = age === null || age > STALE_S.sbp;
      setAttr(el, "data-stale", staleBp ? "true" : "false");
      setText(byId("tile-" + bed.id + "-bp-age"), age === null ? "" : fmtAge(age));
    } else {
      var e = bed.latest[key];
      value = fmtValue(e && e.value);
      age = e && e.ts !== null ? (serverNow() - e.ts) / 1000 : null;
      var stale = age === null || age > STALE_S[key];
      setAttr(el, "data-stale", stale ? "true" : "false");
      setText(byId("tile-" + bed.id + "-" + key + "-age"), stale && age !== null ? fmtAge(age) : "");
    }
    setText(byId("tile-" + bed.id + "-" + key + "-value"), value);
    if (key === "hr") {
      // The pulse rate, small beside HR, greyed when stale; a cuff's pulse is as current as
      // its cuff reading (layout.pulse_text, layout.pulse_stale).
      var p = bed.latest.pr;
      var pEl = byId("tile-" + bed.id + "-pr-value");
      var pAge = p && p.ts !== null ? (serverNow() - p.ts) / 1000 : null;
      var pLimit = p && p.source === "nibp" ? STALE_S.sbp : STALE_S.pr;
      setText(pEl, p ? "PR " + fmtValue(p.value) : "");
      setAttr(pEl, "data-stale", p && (pAge === null || pAge > pLimit) ? "true" : "false");
    }
    setAttr(el, "data-alarm", level || "none");
  }

  function paintBed(bed) {
    var tile = byId("tile-" + bed.id);
    if (!tile) return;
    var active = activeAlarms(bed);
    var top = active[0];
    setAttr(tile, "data-feed", S.feedUp ? "up" : "down");
    setAttr(tile, "data-degraded", S.feedUp && S.degraded.length ? "true" : "false");
    setAttr(tile, "data-alarm", top ? top.priority : "none");
    setAttr(tile, "data-alarm-kind", top ? top.kind : "none");
    setAttr(tile, "data-escalated", top && top.escalated ? "true" : "false");
    setAttr(
      tile,
      "data-technical",
      active.some(function (a) {
        return a.kind === "technical";
      })
        ? "true"
        : "false"
    );
    setAttr(
      tile,
      "data-ack",
      active.length &&
        active.every(function (a) {
          return !!a.acknowledged_at;
        })
        ? "true"
        : "false"
    );
    var silent = active
      .filter(function (a) {
        return a.kind === "technical" && a.signal === "device";
      })
      .map(function (a) {
        return a.device_id || "device";
      });
    setAttr(tile, "data-device", silent.length ? "silent" : "ok");
    setAttr(tile, "data-phase", bed.session ? bed.session.phase : "none");
    setText(byId("tile-" + bed.id + "-patient"), bed.session ? bed.session.patient_label || "" : "");
    setText(byId("tile-" + bed.id + "-phase"), phaseText(bed));
    var levels = {};
    active.forEach(function (a) {
      if (a.kind !== "physiological") return;
      var k = { hr: "hr", spo2: "spo2", rr: "rr", sbp: "bp", dbp: "bp", map: "bp" }[a.signal];
      if (k && !levels[k]) levels[k] = a.priority;
    });
    ["hr", "spo2", "rr", "bp"].forEach(function (k) {
      paintVital(bed, k, levels[k]);
    });
    var status = "";
    if (silent.length) status = "NO DATA \u2013 device silent: " + silent.join(", ");
    else if (top) status = alarmText(top) + (top.acknowledged_at ? " \u2013 acknowledged" : "");
    var paused = top ? alarmPausedMs(top) : 0;
    if (paused > 0) status += " \u2013 audio paused " + fmtClock(paused / 1000);
    setText(byId("tile-" + bed.id + "-status"), status);
    var lost = byId("tile-" + bed.id + "-lost");
    if (lost && !S.feedUp) {
      setText(lost, "CONNECTION LOST \u2013 values not live" + (S.downSince ? " (" + fmtAge((Date.now() - S.downSince) / 1000) + ")" : ""));
    } else if (lost && S.degraded.length) {
      // The monitor says a pipeline stage is failing: readings may not be stored or judged.
      setText(lost, "MONITOR DEGRADED: " + S.degraded.join(", "));
    }
  }

  function paintHeader() {
    var up = S.feedUp;
    setAttr(document.body, "data-feed", up ? "up" : "down");
    var fs = byId("feed-status");
    if (fs) {
      setAttr(fs, "data-feed", up ? "up" : "down");
      setText(
        fs,
        up
          ? S.degraded.length
            ? "Live \u2013 MONITOR DEGRADED: " + S.degraded.join(", ")
            : "Live"
          : S.user
          ? "CONNECTION TO MONITOR LOST \u2013 values are NOT live (" + fmtAge((Date.now() - S.downSince) / 1000) + "); reconnecting\u2026"
          : "Not logged in"
      );
    }
    var st = byId("sound-toggle");
    if (st) {
      setAttr(st, "data-sound", S.sound.on ? "on" : "off");
      setText(st, S.sound.on ? "Sound ON" : "Sound OFF \u2013 click to enable");
    }
  }

  function renderAlarms() {
    var box = byId("alarm-list");
    if (!box) return;
    var groups = [];
    Object.keys(S.beds).forEach(function (id) {
      var act = activeAlarms(S.beds[id]);
      if (act.length) groups.push({ bed: S.beds[id], alarms: act });
    });
    groups.sort(function (a, b) {
      return cmpAlarms(a.alarms[0], b.alarms[0]);
    });
    setAttr(box, "data-count", String(groups.reduce(function (n, g) { return n + g.alarms.length; }, 0)));
    var empty = box.querySelector(".alarm-empty");
    if (!groups.length) {
      if (!empty) {
        box.textContent = "";
        empty = document.createElement("div");
        empty.className = "alarm-empty";
        box.appendChild(empty);
      }
      setText(empty, S.feedUp ? "No active alarms" : "Alarm list unavailable: no connection to the monitor");
      return;
    }
    if (empty) empty.remove();
    var keep = {};
    var prev = null;
    groups.forEach(function (g) {
      var gid = "alarm-group-" + g.bed.id;
      keep[gid] = true;
      var ge = byId(gid);
      if (!ge) {
        ge = document.createElement("div");
        ge.id = gid;
        ge.className = "alarm-group";
        var head = document.createElement("div");
        head.className = "alarm-group-head";
        var link = document.createElement("a");
        link.className = "alarm-bed";
        head.appendChild(link);
        var pb = document.createElement("button");
        pb.id = "pause-" + g.bed.id;
        pb.className = "pause-btn";
        pb.setAttribute("data-bed", g.bed.id);
        head.appendChild(pb);
        ge.appendChild(head);
        var rows = document.createElement("div");
        rows.className = "alarm-rows";
        ge.appendChild(rows);
      }
      var a0 = ge.querySelector(".alarm-bed");
      setText(a0, g.bed.label + (g.bed.session ? " \u2013 " + (g.bed.session.patient_label || "") : ""));
      setAttr(a0, "href", "/bed/" + encodeURIComponent(g.bed.id));
      var paused = bedPausedMs(g.bed);
      var pbtn = byId("pause-" + g.bed.id);
      setAttr(pbtn, "data-paused", paused > 0 ? "true" : "false");
      setText(pbtn, paused > 0 ? "Audio paused " + fmtClock(paused / 1000) : "Pause audio 2:00");
      var rowsBox = ge.querySelector(".alarm-rows");
      var keepRows = {};
      var prevRow = null;
      g.alarms.forEach(function (a) {
        var rid = "alarm-" + a.id;
        keepRows[rid] = true;
        var r = byId(rid);
        if (!r) {
          r = document.createElement("div");
          r.id = rid;
          r.className = "alarm-row";
          var t = document.createElement("span");
          t.className = "alarm-text";
          r.appendChild(t);
          var since = document.createElement("span");
          since.className = "alarm-since";
          r.appendChild(since);
          var st = document.createElement("span");
          st.className = "alarm-state";
          r.appendChild(st);
          var b = document.createElement("button");
          b.id = "ack-" + a.id;
          b.className = "ack-btn";
          b.setAttribute("data-alarm-id", a.id);
          b.textContent = "Acknowledge";
          r.appendChild(b);
        }
        setAttr(r, "data-priority", a.priority);
        setAttr(r, "data-kind", a.kind);
        setAttr(r, "data-state", a.state || "");
        setAttr(r, "data-ack", a.acknowledged_at ? "true" : "false");
        setAttr(r, "data-escalated", a.escalated ? "true" : "false");
        setText(r.querySelector(".alarm-text"), (a.escalated ? "ESCALATED \u2013 " : "") + alarmText(a));
        var st0 = parseTs(a.started_at);
        setText(r.querySelector(".alarm-since"), st0 === null ? "" : "for " + fmtClock((serverNow() - st0) / 1000));
        setText(
          r.querySelector(".alarm-state"),
          a.acknowledged_at ? "acknowledged by " + (a.acknowledged_by || "?") : a.state || ""
        );
        var ab = r.querySelector(".ack-btn");
        if (ab) ab.style.display = a.acknowledged_at ? "none" : "";
        var want = prevRow ? prevRow.nextSibling : rowsBox.firstChild;
        if (want !== r) rowsBox.insertBefore(r, want);
        prevRow = r;
      });
      Array.prototype.slice.call(rowsBox.children).forEach(function (c) {
        if (!keepRows[c.id]) c.remove();
      });
      var wantG = prev ? prev.nextSibling : box.firstChild;
      if (wantG !== ge) box.insertBefore(ge, wantG);
      prev = ge;
    });
    Array.prototype.slice.call(box.children).forEach(function (c) {
      if (!keep[c.id]) c.remove();
    });
  }

  function repaintAll() {
    paintHeader();
    Object.keys(S.beds).forEach(function (id) {
      paintBed(S.beds[id]);
    });
    // Tiles the feed has not described (before hello, or while down) still show the state.
    if (!S.feedUp) {
      Array.prototype.forEach.call(document.querySelectorAll(".tile"), function (t) {
        setAttr(t, "data-feed", "down");
      });
    }
    renderAlarms();
  }

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
    var t = parseTs(msg.ts);
    if (t === null) return;
    var x = localX(t);
    var xs = [], ys = [], idx = [];
    Object.keys(msg.values || {}).forEach(function (k) {
      if (TRACE[k] === undefined || typeof msg.values[k] !== "number") return;
      xs.push([x]);
      ys.push([msg.values[k]]);
      idx.push(TRACE[k]);
    });
    if (idx.length) setProps("trend", { extendData: [{ x: xs, y: ys }, idx, MAX_POINTS] });
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
    if (S.feedUp || S.downSince === null) S.downSince = Date.now();
    S.feedUp = false;
    repaintAll();
  }

  function handle(msg) {
    if (!msg || typeof msg !== "object") return;
    var st = parseTs(msg.server_time);
    if (st !== null) S.offsetMs = st - Date.now();
    switch (msg.type) {
      case "hello":
        S.beds = {};
        S.degraded = (msg.health && msg.health.failing) || [];
        (msg.beds || []).forEach(ingestBed);
        S.feedUp = true;
        S.downSince = null;
        S.attempts = 0;
        checkWardSet();
        repaintAll();
        break;
      case "reading": {
        var bed = ensureBed(msg.bed);
        var ts = parseTs(msg.ts);
        Object.keys(msg.values || {}).forEach(function (k) {
          var cur = bed.latest[k];
          if (!cur || cur.ts === null || ts === null || ts >= cur.ts) {
            bed.latest[k] = { value: msg.values[k], ts: ts, device_id: msg.device_id, source: msg.source };
          }
        });
        paintBed(bed);
        extendTrend(msg);
        break;
      }
      case "alarm": {
        var a = msg.alarm || {};
        var b = ensureBed(a.bed);
        var isNew = !b.alarms[a.id];
        if (isActive(a)) b.alarms[a.id] = a;
        else delete b.alarms[a.id];
        paintBed(b);
        renderAlarms();
        if (isNew && isActive(a)) soundTick(true);
        break;
      }
      case "session": {
        var s = msg.session || {};
        var sb = ensureBed(s.bed);
        setSession(sb, s);
        paintBed(sb);
        refreshBedPage(sb.id);
        break;
      }
      case "health":
        S.degraded = msg.failing || [];
        if (S.degraded.length) soundTick(true);
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

  function setContext(auth, pathname) {
    S.path = pathname || "/";
    var user = auth && auth.username ? auth.username : null;
    var session = (auth && auth.session) || "";
    if (user !== S.user || session !== S.session) {
      S.user = user;
      S.session = session;
      S.attempts = 0;
      if (user) connect();
      else disconnect();
    }
    [50, 300, 1000].forEach(function (ms) {
      setTimeout(repaintAll, ms);
    });
  }

  // --- sound (Web Audio; needs one click to be allowed) --------------------------------------

  function pulse(ctx, at, freq, dur, gain, log) {
    var g = ctx.createGain();
    g.gain.setValueAtTime(0.0001, at);
    g.gain.exponentialRampToValueAtTime(gain, at + 0.02);
    g.gain.setValueAtTime(gain, at + dur - 0.03);
    g.gain.exponentialRampToValueAtTime(0.0001, at + dur);
    g.connect(ctx.destination);
    // Base tone plus harmonics, as the standard asks, so the sound is easy to localise.
    [1, 2, 3, 4].forEach(function (h) {
      var o = ctx.createOscillator();
      var hg = ctx.createGain();
      o.type = "sine";
      o.frequency.value = freq * h;
      hg.gain.value = 1 / h;
      o.connect(hg);
      hg.connect(g);
      o.start(at);
      o.stop(at + dur + 0.01);
    });
    if (log) log.push({ at: at, freq: freq, dur: dur });
  }

  function play(kind, loud, alarm) {
    var bed = alarm ? alarm.bed : null;
    var id = alarm ? alarm.id : null;
    tones.push({ kind: kind, loud: !!loud, at: Date.now(), bed: bed, alarm: id });
    if (tones.length > 50) tones.shift();
    var ctx = S.sound.ctx;
    if (!S.sound.on || !ctx) return;
    var t = ctx.currentTime + 0.05;
    var g = loud ? 0.5 : 0.22;
    var p = [];
    if (kind === "high") {
      // IEC 60601-1-8 high-priority burst: 10 pulses, 3+2 ... 3+2.
      [0, 0.2, 0.4, 0.75, 0.95, 1.9, 2.1, 2.3, 2.65, 2.85].forEach(function (o) {
        pulse(ctx, t + o, 880, 0.15, g, p);
      });
    } else if (kind === "medium") {
      [0, 0.3, 0.6].forEach(function (o) { pulse(ctx, t + o, 660, 0.2, g, p); });
    } else if (kind === "low") {
      [0, 0.4].forEach(function (o) { pulse(ctx, t + o, 520, 0.25, g * 0.8, p); });
    } else {
      // Technical (connection lost): two long falling tones, unlike any physiological pattern.
      pulse(ctx, t, 440, 0.45, g, p);
      pulse(ctx, t + 0.55, 330, 0.6, g, p);
    }
    audioLog.push({
      kind: kind,
      loud: !!loud,
      bed: bed,
      alarm: id,
      state: ctx.state,
      start: t,
      pulses: p.map(function (x) {
        return { offset: Math.round((x.at - t) * 1000) / 1000, freq: x.freq, dur: x.dur };
      }),
    });
    if (audioLog.length > 50) audioLog.shift();
  }

  function soundTick(immediate) {
    var now = Date.now();
    if (S.user && !S.feedUp) {
      if (now - S.sound.techLast >= 10000) {
        S.sound.techLast = now;
        play("technical", false);
      }
      return;
    }
    if (S.user && S.degraded.length && now - S.sound.techLast >= 10000) {
      // A degraded monitor sounds the technical tone too; patient alarms still sound below.
      S.sound.techLast = now;
      play("technical", false);
    }
    var best = null;
    Object.keys(S.beds).forEach(function (id) {
      activeAlarms(S.beds[id]).forEach(function (a) {
        if (a.acknowledged_at || a.state === "acknowledged" || alarmPausedMs(a) > 0) return;
        if (a.priority === "low" && S.sound.lowPlayed[a.id]) return;
        if (!best || cmpAlarms(a, best) < 0) best = a;
      });
    });
    if (!best) return;
    var interval = best.priority === "high" ? (best.escalated ? 3000 : 5000) : best.priority === "medium" ? (best.escalated ? 5000 : 10000) : 0;
    var last = S.sound.last[best.priority] || 0;
    if (best.priority === "low") {
      S.sound.lowPlayed[best.id] = true;
      play("low", best.escalated, best);
    } else if (now - last >= interval || (immediate && now - last >= 2500)) {
      S.sound.last[best.priority] = now;
      play(best.priority, best.escalated, best);
    }
  }

  function toggleSound() {
    if (S.sound.on) {
      S.sound.on = false;
    } else {
      try {
        var Ctx = window.AudioContext || window.webkitAudioContext;
        if (!S.sound.ctx && Ctx) S.sound.ctx = new Ctx();
        if (S.sound.ctx && S.sound.ctx.resume) S.sound.ctx.resume();
        S.sound.on = true;
      } catch (e) {
        S.sound.on = false;
      }
    }
    paintHeader();
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
    post("/panel/api/beds/" + encodeURIComponent(bedId) + "/audio-pause", { seconds: 120 })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body && body.detail ? body.detail : "HTTP " + r.status);
          // The monitor answers with the alarms it paused; only those go quiet.
          var paused = (body && body.alarms) || [];
          paused.forEach(function (a) {
            handle({ type: "alarm", alarm: a });
          });
          if (!paused.length) showError("Nothing to pause: no unacknowledged alarm on this bed.");
          repaintAll();
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
    if (kind === "html") {
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
        if (kind === "html") {
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
    if (btn.id === "sound-toggle") toggleSound();
    else if (btn.classList.contains("ack-btn")) ackAlarm(btn.getAttribute("data-alarm-id"), btn);
    else if (btn.classList.contains("pause-btn")) pauseAudio(btn.getAttribute("data-bed"));
    else if (btn.classList.contains("report-button")) openReport(btn);
  });

  // --- watchdog and ticker -----------------------------------------------------------------

  setInterval(function () {
    if (S.user && S.connected && Date.now() - S.lastMsg > SILENCE_MS) {
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
    repaintAll();
    soundTick(false);
  }, 1000);

  function observe() {
    var pending = null;
    new MutationObserver(function () {
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        repaintAll();
      }, 50);
    }).observe(document.body, { childList: true, subtree: true });
  }
  if (document.body) observe();
  else document.addEventListener("DOMContentLoaded", observe);

  window.vigil = {
    state: S,
    tones: tones,
    audio: audioLog,
    setContext: setContext,
    reconnect: connect,
    repaint: repaintAll,
    handle: handle,
  };
})();
