/*
 * Vigil panel, 2 of 5: what the page knows, as the monitor sent it.
 *
 * One object (window.vigil.state) holds the beds from the feed's hello, their latest values,
 * active alarms, sessions (with the monitor's protocol status: checkpoints, discharge) and the
 * last 15 minutes of readings for the tiles' mini-trends. Nothing here decides a clinical
 * rule: alarms, due checks and discharge come computed from the monitor.
 */
(function () {
  "use strict";

  var F = window.VigilFmt;

  var S = {
    user: null, // who is logged in (a name, not a secret); null: nobody
    session: "", // the tag of this tab's panel session (not a secret), sent with every command
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
    alarmsFirst: false,
    lastWardReload: 0,
    lastBedRefresh: 0,
    sound: { on: false, ctx: null, last: {}, lowPlayed: {}, techLast: 0 },
  };

  function serverNow() {
    return Date.now() + S.offsetMs;
  }

  function ingestBed(b) {
    var bed = {
      id: String(b.id),
      label: b.label || String(b.id),
      devices: b.devices || [],
      session: null,
      sessionAt: Date.now(),
      sessionFetched: 0,
      latest: {},
      alarms: {},
      hist: [],
      histKeys: {},
      histLoaded: false,
    };
    setSession(bed, b.session);
    var latest = b.latest || {};
    Object.keys(latest).forEach(function (k) {
      var e = latest[k] || {};
      var ts = F.parseTs(e.ts);
      if (ts === null && typeof e.age_s === "number") ts = serverNow() - e.age_s * 1000;
      bed.latest[k] = { value: e.value, ts: ts, device_id: e.device_id, source: e.source };
    });
    (b.alarms || []).forEach(function (a) {
      if (isActive(a)) bed.alarms[a.id] = a;
    });
    var old = S.beds[bed.id];
    if (old) {
      // A fresh hello replaces what the feed knows, not the trend already fetched.
      bed.hist = old.hist;
      bed.histKeys = old.histKeys;
      bed.histLoaded = old.histLoaded;
    }
    S.beds[bed.id] = bed;
    return bed;
  }

  function setSession(bed, s) {
    if (!s || s.phase === F.codes().phase.ENDED || s.ended_at) {
      if (!s || !bed.session || bed.session.id === s.id) bed.session = null;
    } else {
      bed.session = s;
    }
    bed.sessionAt = Date.now();
  }

  function isActive(a) {
    return a && a.state !== F.codes().alarm_state.ENDED && !a.ended_at;
  }

  // Most urgent first: priority, then unacknowledged, escalated, physiological, oldest.
  function alarmKey(a) {
    var rank = F.constants().rank;
    return [
      -(rank[a.priority] || 0),
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
    var t = F.parseTs(a && a.audio_paused_until);
    return t === null ? 0 : Math.max(0, t - serverNow());
  }
  function bedPausedMs(bed) {
    var ms = 0;
    activeAlarms(bed).forEach(function (a) {
      ms = Math.max(ms, alarmPausedMs(a));
    });
    return ms;
  }

  function applyReading(bed, msg) {
    var ts = F.parseTs(msg.ts);
    var values = msg.values || {};
    Object.keys(values).forEach(function (k) {
      var cur = bed.latest[k];
      if (!cur || cur.ts === null || ts === null || ts >= cur.ts) {
        bed.latest[k] = { value: values[k], ts: ts, device_id: msg.device_id, source: msg.source };
      }
    });
    addHistory(bed, msg);
  }

  // The mini-trend's points: HR, SpO2 and cuff pressures, each reading once (a reading
  // fetched at load may also come through the feed).
  function addHistory(bed, r) {
    var t = F.parseTs(r.ts);
    var v = r.values || {};
    if (t === null) return;
    var key = (r.device_id || "") + ":" + (r.seq === undefined ? r.ts : r.seq);
    if (bed.histKeys[key]) return;
    var p = { t: t, hr: v.hr, pr: v.pr, spo2: v.spo2, sbp: v.sbp, dbp: v.dbp };
    if ([p.hr, p.pr, p.spo2, p.sbp, p.dbp].every(function (x) { return typeof x !== "number"; })) return;
    bed.histKeys[key] = true;
    var n = bed.hist.length;
    if (n && bed.hist[n - 1].t > t) {
      // Late (store-and-forward) readings go where they belong in time.
      var i = n;
      while (i > 0 && bed.hist[i - 1].t > t) i--;
      bed.hist.splice(i, 0, p);
    } else {
      bed.hist.push(p);
    }
    bed.histDirty = true;
  }

  function trimHistory(bed) {
    var keepFrom = serverNow() - F.constants().trend_window_s * 1000;
    var drop = 0;
    while (drop < bed.hist.length && bed.hist[drop].t < keepFrom) drop++;
    if (drop) bed.hist.splice(0, drop);
    if (Object.keys(bed.histKeys).length > 4 * (bed.hist.length + 100)) {
      bed.histKeys = {}; // only what the feed may still repeat matters; stop unbounded growth
    }
  }

  function infusionElapsed(bed) {
    var s = bed.session;
    if (!s) return null;
    var e = typeof s.infusion_elapsed_s === "number" ? s.infusion_elapsed_s : 0;
    if (s.phase === F.codes().phase.INFUSION && s.infusion_running) e += (Date.now() - bed.sessionAt) / 1000;
    return e;
  }

  // The protocol item to show: the monitor's statuses, most pressing first.
  function nextCheck(bed) {
    var s = bed.session;
    var cps = (s && s.checkpoints) || [];
    var order = { overdue: 0, due: 1, upcoming: 2 };
    var best = null;
    cps.forEach(function (c) {
      if (order[c.status] === undefined) return;
      if (
        !best ||
        order[c.status] < order[best.status] ||
        (order[c.status] === order[best.status] && String(c.due_at) < String(best.due_at))
      ) {
        best = c;
      }
    });
    return best;
  }

  // The open session's stored history holds an event that does not fit (record_problem, the
  // bed's and its session's alike): the monitor names it, an administrator repairs it.
  function recordProblem(bed) {
    return (bed.session && bed.session.record_problem) || null;
  }

  function needsAttention(bed) {
    var c = nextCheck(bed);
    return activeAlarms(bed).length > 0 || !!(c && c.status === "overdue") || !!recordProblem(bed);
  }

  window.VigilState = {
    S: S,
    serverNow: serverNow,
    ingestBed: ingestBed,
    setSession: setSession,
    isActive: isActive,
    cmpAlarms: cmpAlarms,
    activeAlarms: activeAlarms,
    alarmPausedMs: alarmPausedMs,
    bedPausedMs: bedPausedMs,
    applyReading: applyReading,
    addHistory: addHistory,
    trimHistory: trimHistory,
    infusionElapsed: infusionElapsed,
    nextCheck: nextCheck,
    needsAttention: needsAttention,
    recordProblem: recordProblem,
  };
})();
