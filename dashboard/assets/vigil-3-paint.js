/*
 * Vigil panel, 3 of 5: the one renderer of every live element.
 *
 * The server gives each bed an empty tile (class "tile", data-bed, the link to the bed
 * page, an empty tile-{bed}-body) and an empty #alarm-list; everything inside them is drawn
 * here, from window.vigil.state: values, ages, the session clock, the next protocol item,
 * discharge, the alarm banner and the 15-minute mini-trend (a canvas). Ids are a public test
 * hook (docs/panel.md): tile-{bed}-{hr|spo2|rr|bp}[-value|-age], -pr-value, -phase, -status,
 * -due, -record, -trend, -lost, -course-n, -course-link; alarm-{id}, ack-{id}, pause-{bed}.
 */
(function () {
  "use strict";

  var F = window.VigilFmt;
  var V = window.VigilState;
  var S = V.S;
  var VITALS = ["hr", "spo2", "rr", "bp"];
  var TILE_OF = { hr: "hr", pr: "hr", spo2: "spo2", rr: "rr", sbp: "bp", dbp: "bp", map: "bp" };
  // One colour per parameter, as central stations draw them: the stylesheet's --hr, --spo2,
  // --bp (vigil.css), so the mini-trend and the values never disagree.
  var colours = null;
  function colour(k) {
    if (!colours || !colours.hr) {
      var css = window.getComputedStyle(document.documentElement);
      colours = {};
      ["hr", "spo2", "bp"].forEach(function (p) {
        colours[p] = css.getPropertyValue("--" + p).trim();
      });
    }
    return colours[k];
  }

  function byId(id) {
    return document.getElementById(id);
  }
  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }
  function setAttr(el, name, value) {
    if (el && el.getAttribute(name) !== value) el.setAttribute(name, value);
  }
  function make(tag, cls, id, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (id) el.id = id;
    if (text) el.textContent = text;
    return el;
  }
  function ageOf(entry) {
    return entry && entry.ts !== null && entry.ts !== undefined ? (V.serverNow() - entry.ts) / 1000 : null;
  }
  function staleAfter(signal) {
    return F.constants().stale_s[signal];
  }

  // --- the tile's inside, built once per container ------------------------------------------

  function build(tile, bedId) {
    var body = byId("tile-" + bedId + "-body");
    if (!body) return null;
    if (body.getAttribute("data-built") === "true") return body;
    body.textContent = "";
    var line = make("div", "tile-line");
    line.appendChild(make("span", "tile-patient", "tile-" + bedId + "-patient"));
    line.appendChild(make("span", "tile-phase", "tile-" + bedId + "-phase"));
    body.appendChild(line);
    var vitals = make("div", "tile-vitals");
    VITALS.forEach(function (k) {
      var v = make("div", "vital vital-" + k, "tile-" + bedId + "-" + k);
      v.setAttribute("data-signal", k);
      v.setAttribute("data-alarm", "none");
      var head = make("span", "vital-head");
      head.appendChild(make("span", "vital-label", null, F.NAME[k]));
      head.appendChild(make("span", "vital-unit", null, F.UNIT[k]));
      v.appendChild(head);
      v.appendChild(make("span", "vital-value", "tile-" + bedId + "-" + k + "-value", k === "bp" ? "--/--" : "--"));
      var foot = make("span", "vital-foot");
      if (k === "hr") {
        var pr = make("span", "vital-pr", "tile-" + bedId + "-pr-value");
        pr.title = "pulse rate (oximeter or cuff)";
        foot.appendChild(pr);
      }
      foot.appendChild(make("span", "vital-age", "tile-" + bedId + "-" + k + "-age"));
      v.appendChild(foot);
      vitals.appendChild(v);
    });
    body.appendChild(vitals);
    var canvas = make("canvas", "tile-trend", "tile-" + bedId + "-trend");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("data-points", "0");
    body.appendChild(canvas);
    var due = make("div", "tile-due", "tile-" + bedId + "-due");
    due.setAttribute("data-due", "none");
    body.appendChild(due);
    var record = make("div", "tile-record", "tile-" + bedId + "-record");
    record.setAttribute("data-record", "ok");
    body.appendChild(record);
    var status = make("div", "tile-status", "tile-" + bedId + "-status");
    status.setAttribute("role", "status");
    body.appendChild(status);
    body.appendChild(make("div", "tile-lost", "tile-" + bedId + "-lost", "CONNECTION LOST \u2013 values not live"));
    body.setAttribute("data-built", "true");
    tile.setAttribute("data-trend-drawn", "false");
    return body;
  }

  // --- words -------------------------------------------------------------------------------

  function phaseText(bed) {
    var s = bed.session;
    var W = F.words();
    if (!s) return bed.devices && bed.devices.length ? W.no_patient : "No device assigned";
    var PH = F.codes().phase;
    var title = W.phase_title;
    var now = V.serverNow();
    if (s.phase === PH.BASELINE) {
      var opened = F.parseTs(s.opened_at);
      return title[PH.BASELINE] + " " + (opened === null ? "" : F.clock((now - opened) / 1000));
    }
    if (s.phase === PH.INFUSION) {
      var t = title[PH.INFUSION] + " " + F.clock(V.infusionElapsed(bed));
      if (s.infusion_planned_s) t += " / " + F.clock(s.infusion_planned_s);
      if (!s.infusion_running) t += W.paused;
      return t;
    }
    if (s.phase === PH.RECOVERY) {
      var stopped = F.parseTs(s.infusion_stopped_at);
      // Time since the infusion stopped: what the recovery rules count from.
      return title[PH.RECOVERY] + " " + (stopped === null ? "" : F.clock((now - stopped) / 1000));
    }
    return W.no_patient;
  }

  function dueText(bed) {
    var s = bed.session;
    if (!s) return { text: "", state: "none" };
    var parts = [];
    var state = "none";
    var c = V.nextCheck(bed);
    var now = V.serverNow();
    if (c) {
      var what = F.words().check[c.kind] || String(c.kind).toUpperCase();
      var at = F.parseTs(c.due_at);
      if (c.status === "overdue") {
        parts.push(what + " overdue " + F.span(at === null ? 0 : (now - at) / 1000));
      } else if (c.status === "due") {
        parts.push(what + " due now");
      } else if (at !== null && at > now) {
        parts.push(what + " due in " + F.span((at - now) / 1000));
      } else {
        parts.push(what + " due now");
      }
      state = c.status;
    }
    if (s.phase === F.codes().phase.RECOVERY && s.discharge) {
      var d = s.discharge;
      var blocked = (d.blocked_by || []).filter(function (b) {
        return b !== "too_soon";
      });
      var when = F.parseTs(d.eligible_at);
      if (d.eligible) {
        parts.push("Discharge eligible now");
      } else if (!blocked.length && when !== null) {
        parts.push("Discharge eligible " + F.localClock(when));
      } else {
        var why = blocked.map(function (b) {
          return F.words().blocked[b] || String(b).replace(/_/g, " ");
        });
        parts.push(
          "Discharge blocked: " + why.join(", ") +
          ((d.blocked_by || []).indexOf("too_soon") >= 0 && when !== null ? " (not before " + F.localClock(when) + ")" : "")
        );
      }
    }
    return { text: parts.join(" \u00b7 "), state: state };
  }

  // --- the course: "Infusion 3 of 6" and the way to the patient's course page ---------------

  // In the tile's head, beside the bed's name: its own link, a tab stop of its own after the
  // link to the bed page (which stays as it is, an outside hook).
  function paintCourse(bed) {
    var box = byId("tile-" + bed.id + "-course");
    if (!box) return;
    var n = byId("tile-" + bed.id + "-course-n");
    var link = byId("tile-" + bed.id + "-course-link");
    if (!n || !link) {
      box.textContent = "";
      n = make("span", "tile-course-n", "tile-" + bed.id + "-course-n");
      link = make("a", "tile-course-link", "tile-" + bed.id + "-course-link", "Course");
      box.appendChild(n);
      box.appendChild(link);
    }
    var s = bed.session;
    var pid = s && s.patient_id ? String(s.patient_id) : "";
    setText(n, s ? F.courseText(s.course, s.protocol) : "");
    if (link.hidden !== !pid) link.hidden = !pid;
    if (pid) {
      setAttr(link, "href", "/patient/" + encodeURIComponent(pid));
      // The visible word first, so a voice command "Course" finds it (WCAG 2.5.3).
      setAttr(link, "aria-label", "Course of patient " + (s.patient_label || pid));
    } else if (link.hasAttribute("href")) {
      link.removeAttribute("href");
      link.removeAttribute("aria-label");
    }
  }

  // --- one vital ---------------------------------------------------------------------------

  function paintVital(bed, key, level) {
    var el = byId("tile-" + bed.id + "-" + key);
    if (!el) return;
    var text, age, stale;
    if (key === "bp") {
      var sbp = bed.latest.sbp,
        dbp = bed.latest.dbp,
        mp = bed.latest.map;
      var anchor = sbp || mp || dbp;
      if (!anchor) {
        text = "--/--";
        age = null;
      } else {
        text = F.value(sbp && sbp.value) + "/" + F.value(dbp && dbp.value);
        if (mp) text += " (" + F.value(mp.value) + ")";
        age = ageOf(anchor);
      }
      stale = age === null || age > staleAfter("sbp");
      setText(byId("tile-" + bed.id + "-bp-age"), age === null ? "" : F.ago(age));
    } else {
      var e = bed.latest[key];
      text = F.value(e && e.value);
      age = ageOf(e);
      stale = age === null || age > staleAfter(key);
      setText(byId("tile-" + bed.id + "-" + key + "-age"), stale && age !== null ? F.ago(age) : "");
    }
    setAttr(el, "data-stale", stale ? "true" : "false");
    var valEl = byId("tile-" + bed.id + "-" + key + "-value");
    if (key === "bp" && valEl && valEl.textContent !== text) {
      // The mean in smaller type after systolic/diastolic, so the pair stays readable.
      var cut = text.indexOf(" (");
      valEl.textContent = cut < 0 ? text : text.slice(0, cut);
      if (cut >= 0) valEl.appendChild(make("span", "vital-map", null, text.slice(cut)));
    } else {
      setText(valEl, text);
    }
    if (key === "hr") {
      // The pulse rate, small beside HR, greyed when stale; a cuff's pulse is as current as
      // its cuff reading.
      var p = bed.latest.pr;
      var pEl = byId("tile-" + bed.id + "-pr-value");
      var pAge = ageOf(p);
      var pLimit = p && p.source === "nibp" ? staleAfter("sbp") : staleAfter("pr");
      setText(pEl, p ? "PR " + F.value(p.value) : "");
      setAttr(pEl, "data-stale", p && (pAge === null || pAge > pLimit) ? "true" : "false");
    }
    setAttr(el, "data-alarm", level || "none");
  }

  // --- the tile ----------------------------------------------------------------------------

  function paintBed(bed, withTrend) {
    var tile = byId("tile-" + bed.id);
    if (!tile) return;
    var fresh = !byId("tile-" + bed.id + "-body") || byId("tile-" + bed.id + "-body").getAttribute("data-built") !== "true";
    if (!build(tile, bed.id)) return;
    var active = V.activeAlarms(bed);
    var top = active[0];
    setAttr(tile, "data-feed", S.feedUp ? "up" : "down");
    setAttr(tile, "data-degraded", S.feedUp && S.degraded.length ? "true" : "false");
    setAttr(tile, "data-alarm", top ? top.priority : "none");
    setAttr(tile, "data-alarm-kind", top ? top.kind : "none");
    setAttr(tile, "data-escalated", top && top.escalated ? "true" : "false");
    setAttr(tile, "data-technical", active.some(function (a) { return a.kind === "technical"; }) ? "true" : "false");
    setAttr(tile, "data-ack", active.length && active.every(function (a) { return !!a.acknowledged_at; }) ? "true" : "false");
    var silent = active
      .filter(function (a) {
        return a.kind === "technical" && a.signal === "device";
      })
      .map(function (a) {
        return a.device_id || "device";
      });
    setAttr(tile, "data-device", silent.length ? "silent" : "ok");
    setAttr(tile, "data-phase", bed.session ? bed.session.phase : "none");
    setAttr(tile, "data-attention", V.needsAttention(bed) ? "true" : "false");
    setText(byId("tile-" + bed.id + "-patient"), bed.session ? bed.session.patient_label || "" : "");
    setText(byId("tile-" + bed.id + "-phase"), phaseText(bed));
    paintCourse(bed);
    var levels = {};
    active.forEach(function (a) {
      if (a.kind !== "physiological") return;
      var k = TILE_OF[a.signal];
      if (k && !levels[k]) levels[k] = a.priority;
    });
    VITALS.forEach(function (k) {
      paintVital(bed, k, levels[k]);
    });
    var due = dueText(bed);
    var dueEl = byId("tile-" + bed.id + "-due");
    setText(dueEl, due.text);
    setAttr(dueEl, "title", due.text);
    setAttr(dueEl, "data-due", due.state);
    var problem = V.recordProblem(bed);
    var recordEl = byId("tile-" + bed.id + "-record");
    setAttr(tile, "data-record", problem ? "attention" : "ok");
    setAttr(recordEl, "data-record", problem ? "attention" : "ok");
    setText(recordEl, F.recordText(problem));
    paintStatus(bed, top, silent);
    var lost = byId("tile-" + bed.id + "-lost");
    if (lost && !S.feedUp) {
      setText(lost, "CONNECTION LOST \u2013 values not live" + (S.downSince ? " (" + F.span((Date.now() - S.downSince) / 1000) + ")" : ""));
    } else if (lost && S.degraded.length) {
      // The monitor says a pipeline stage is failing: readings may not be stored or judged.
      setText(lost, "MONITOR DEGRADED: " + S.degraded.join(", "));
    }
    if (withTrend || fresh) drawTrend(bed);
  }

  function paintStatus(bed, top, silent) {
    var el = byId("tile-" + bed.id + "-status");
    if (!el) return;
    var badge = "",
      text = "";
    if (silent.length) {
      badge = "TECHNICAL";
      text = "NO DATA \u2013 device silent: " + silent.join(", ");
    } else if (top) {
      badge = top.kind === "technical" ? "TECHNICAL" : F.words().badge[top.priority] || "";
      text = F.alarmText(top) + (top.acknowledged_at ? " \u2013 acknowledged" : "");
    } else if (!bed.devices || !bed.devices.length) {
      text = "No device assigned";
    }
    var paused = top ? V.alarmPausedMs(top) : 0;
    if (paused > 0) text += " \u2013 audio paused " + F.clock(paused / 1000);
    var want = (badge ? badge + " " : "") + text;
    setAttr(el, "title", want);
    if (el.textContent === want) return;
    el.textContent = "";
    if (badge) {
      var b = make("span", "prio-badge", null, badge);
      b.setAttribute("data-priority", top ? top.priority : F.codes().priority.MEDIUM);
      el.appendChild(b);
      el.appendChild(document.createTextNode(" "));
    }
    el.appendChild(document.createTextNode(text));
  }

  // --- the mini-trend: HR line and cuff BP points on one mmHg-and-/min axis (as an
  // anaesthesia chart), SpO2 below on its own; the first alarm limits drawn faintly -------

  function firstLimit(bed, signal, dir) {
    var C = F.constants();
    var base = ((C.limits || {})[signal] || {})[dir] || {};
    var ov = (((bed.session && bed.session.limit_overrides) || {})[signal] || {})[dir] || {};
    var rank = C.rank;
    var best = null,
      bestRank = Infinity;
    Object.keys(rank).forEach(function (p) {
      var v = typeof ov[p] === "number" ? ov[p] : base[p];
      if (typeof v === "number" && (rank[p] || 0) < bestRank) {
        best = v;
        bestRank = rank[p] || 0;
      }
    });
    return best;
  }

  function drawTrend(bed) {
    var canvas = byId("tile-" + bed.id + "-trend");
    if (!canvas || !canvas.getContext) return;
    V.trimHistory(bed);
    bed.histDirty = false;
    var w = canvas.clientWidth,
      h = canvas.clientHeight;
    if (!w || !h) return;
    var dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var C = F.constants();
    var now = V.serverNow();
    var from = now - C.trend_window_s * 1000;
    var D = F.codes().direction;
    var split = Math.round(h * 0.62);
    var bands = {
      // Fixed scales, so a climb or a slide looks the same on every tile and every minute.
      top: { y0: 2, y1: split - 2, lo: 40, hi: 200 },
      bottom: { y0: split + 2, y1: h - 2, lo: 80, hi: 100 },
    };
    function x(t) {
      return ((t - from) / (now - from)) * w;
    }
    function y(band, v) {
      var b = bands[band];
      var c = Math.max(b.lo, Math.min(b.hi, v));
      return b.y1 - ((c - b.lo) / (b.hi - b.lo)) * (b.y1 - b.y0);
    }
    g.fillStyle = "rgba(255,255,255,0.04)";
    g.fillRect(0, split, w, 1);
    // Limits, faint: where the first alarm of each direction begins (the clinic's, with the
    // session's own overrides over them).
    g.setLineDash([3, 4]);
    g.lineWidth = 1;
    [["hr", "top"], ["sbp", "top"], ["spo2", "bottom"]].forEach(function (pair) {
      var lineColour = colour(pair[0] === "sbp" ? "bp" : pair[0]);
      [D.LOW, D.HIGH].forEach(function (dir) {
        var first = firstLimit(bed, pair[0], dir);
        if (typeof first !== "number") return;
        g.strokeStyle = lineColour;
        g.globalAlpha = 0.35;
        g.beginPath();
        var yy = Math.round(y(pair[1], first)) + 0.5;
        g.moveTo(0, yy);
        g.lineTo(w, yy);
        g.stroke();
      });
    });
    g.setLineDash([]);
    g.globalAlpha = 1;
    var drawn = 0;
    function line(key, band, stroke) {
      var started = false,
        lastT = null;
      g.strokeStyle = stroke;
      g.lineWidth = 2;
      g.beginPath();
      bed.hist.forEach(function (p) {
        var v = p[key];
        if (key === "hr" && typeof v !== "number" && typeof p.pr === "number" && !p.sbp) v = p.pr;
        if (typeof v !== "number" || p.t < from) return;
        // A gap of more than 30 s is drawn as a gap, never bridged.
        if (!started || (lastT !== null && p.t - lastT > 30000)) g.moveTo(x(p.t), y(band, v));
        else g.lineTo(x(p.t), y(band, v));
        started = true;
        lastT = p.t;
        drawn++;
      });
      g.stroke();
    }
    line("hr", "top", colour("hr"));
    line("spo2", "bottom", colour("spo2"));
    // Cuff pressures as points: systolic a down triangle, diastolic an up triangle.
    g.fillStyle = colour("bp");
    bed.hist.forEach(function (p) {
      if (p.t < from) return;
      [["sbp", 1], ["dbp", -1]].forEach(function (d) {
        var v = p[d[0]];
        if (typeof v !== "number") return;
        var px = x(p.t),
          py = y("top", v),
          s = 4;
        g.beginPath();
        g.moveTo(px - s, py - s * d[1]);
        g.lineTo(px + s, py - s * d[1]);
        g.lineTo(px, py + s * d[1]);
        g.closePath();
        g.fill();
        drawn++;
      });
    });
    canvas.setAttribute("data-points", String(drawn));
    canvas.setAttribute(
      "aria-label",
      drawn ? "Last 15 minutes of HR, SpO\u2082 and cuff pressure" : "No readings in the last 15 minutes"
    );
    var tile = byId("tile-" + bed.id);
    setAttr(tile, "data-trend-drawn", "true");
  }

  // --- header ------------------------------------------------------------------------------

  function announce(text) {
    var el = byId("announce");
    if (el) setText(el, text);
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
          ? "CONNECTION TO MONITOR LOST \u2013 values are NOT live (" + F.span((Date.now() - S.downSince) / 1000) + "); reconnecting\u2026"
          : "Not logged in"
      );
    }
    var st = byId("sound-toggle");
    if (st) {
      setAttr(st, "data-sound", S.sound.on ? "on" : "off");
      setAttr(st, "aria-pressed", S.sound.on ? "true" : "false");
      setText(st, S.sound.on ? "Sound ON" : "Sound OFF \u2013 click to enable");
    }
    var ot = byId("order-toggle");
    if (ot) {
      setAttr(ot, "data-order", S.alarmsFirst ? "attention" : "bed");
      setAttr(ot, "aria-pressed", S.alarmsFirst ? "true" : "false");
      setText(ot, S.alarmsFirst ? "Alarms first: on" : "Alarms first: off");
    }
  }

  // Optional ordering: beds needing attention first, by CSS order (the DOM stays the
  // server's, so React and the painter never fight over it).
  function orderTiles() {
    var ward = byId("ward");
    if (!ward) return;
    var tiles = Array.prototype.slice.call(ward.querySelectorAll(".tile"));
    var rank = F.constants().rank;
    tiles.forEach(function (t, i) {
      var o = "";
      if (S.alarmsFirst) {
        var bed = S.beds[t.getAttribute("data-bed")];
        var top = bed ? V.activeAlarms(bed)[0] : null;
        var score = top ? 4 - (rank[top.priority] || 0) : bed && V.needsAttention(bed) ? 4 : 5;
        o = String(score * 1000 + i);
      }
      if (t.style.order !== o) t.style.order = o;
    });
  }

  // --- alarm list --------------------------------------------------------------------------

  function renderAlarms() {
    var box = byId("alarm-list");
    if (!box) return;
    var groups = [];
    Object.keys(S.beds).forEach(function (id) {
      var act = V.activeAlarms(S.beds[id]);
      if (act.length) groups.push({ bed: S.beds[id], alarms: act });
    });
    groups.sort(function (a, b) {
      return V.cmpAlarms(a.alarms[0], b.alarms[0]);
    });
    setAttr(box, "data-count", String(groups.reduce(function (n, g) { return n + g.alarms.length; }, 0)));
    var empty = box.querySelector(".alarm-empty");
    if (!groups.length) {
      if (!empty) {
        Array.prototype.slice.call(box.children).forEach(function (c) {
          if (!c.classList.contains("alarm-error")) c.remove();
        });
        empty = make("div", "alarm-empty");
        box.appendChild(empty);
      }
      setText(empty, S.feedUp ? "No active alarms" : "Alarm list unavailable: no connection to the monitor");
      return;
    }
    if (empty) empty.remove();
    var keep = {};
    var prev = box.querySelector(".alarm-error");
    groups.forEach(function (g) {
      var gid = "alarm-group-" + g.bed.id;
      keep[gid] = true;
      var ge = byId(gid);
      if (!ge) {
        ge = make("div", "alarm-group", gid);
        var head = make("div", "alarm-group-head");
        head.appendChild(make("a", "alarm-bed"));
        var pb = make("button", "pause-btn", "pause-" + g.bed.id);
        pb.type = "button";
        pb.setAttribute("data-bed", g.bed.id);
        head.appendChild(pb);
        ge.appendChild(head);
        ge.appendChild(make("div", "alarm-rows"));
      }
      var a0 = ge.querySelector(".alarm-bed");
      setText(a0, g.bed.label + (g.bed.session ? " \u2013 " + (g.bed.session.patient_label || "") : ""));
      setAttr(a0, "href", "/bed/" + encodeURIComponent(g.bed.id));
      var paused = V.bedPausedMs(g.bed);
      var pbtn = ge.querySelector(".pause-btn");
      setAttr(pbtn, "data-paused", paused > 0 ? "true" : "false");
      setText(
        pbtn,
        paused > 0 ? "Audio paused " + F.clock(paused / 1000) : "Pause audio " + F.clock(F.constants().audio_pause_s)
      );
      var rowsBox = ge.querySelector(".alarm-rows");
      var keepRows = {};
      var prevRow = null;
      g.alarms.forEach(function (a) {
        var rid = "alarm-" + a.id;
        keepRows[rid] = true;
        var r = byId(rid);
        if (!r) {
          r = make("div", "alarm-row", rid);
          r.appendChild(make("span", "prio-badge"));
          r.appendChild(make("span", "alarm-text"));
          r.appendChild(make("span", "alarm-since"));
          r.appendChild(make("span", "alarm-state"));
          var b = make("button", "ack-btn", "ack-" + a.id, "Acknowledge");
          b.type = "button";
          b.setAttribute("data-alarm-id", a.id);
          r.appendChild(b);
        }
        setAttr(r, "data-priority", a.priority);
        setAttr(r, "data-kind", a.kind);
        setAttr(r, "data-state", a.state || "");
        setAttr(r, "data-ack", a.acknowledged_at ? "true" : "false");
        setAttr(r, "data-escalated", a.escalated ? "true" : "false");
        var badge = r.querySelector(".prio-badge");
        setText(badge, a.kind === "technical" ? "TECHNICAL" : F.words().badge[a.priority] || "");
        setAttr(badge, "data-priority", a.priority);
        setText(r.querySelector(".alarm-text"), (a.escalated ? "ESCALATED \u2013 " : "") + F.alarmText(a));
        var st0 = F.parseTs(a.started_at);
        setText(
          r.querySelector(".alarm-since"),
          st0 === null ? "" : "since " + F.localClock(st0) + " (" + F.span((V.serverNow() - st0) / 1000) + ")"
        );
        setText(
          r.querySelector(".alarm-state"),
          a.acknowledged_at ? "acknowledged by " + (a.acknowledged_by || "?") : a.state === F.codes().alarm_state.ACTIVE ? "" : a.state || ""
        );
        var ab = r.querySelector(".ack-btn");
        if (ab) {
          ab.style.display = a.acknowledged_at ? "none" : "";
          setAttr(ab, "aria-label", "Acknowledge " + F.alarmText(a) + " on " + g.bed.label);
        }
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
      if (!keep[c.id] && !c.classList.contains("alarm-error")) c.remove();
    });
  }

  // The mini-trends are drawn here (at most once a second each, by the ticker), not on every
  // reading: a bed with several devices sends several a second, a pixel is ~2 s of trend.
  function repaintAll(withTrend) {
    paintHeader();
    Object.keys(S.beds).forEach(function (id) {
      var bed = S.beds[id];
      paintBed(bed, withTrend || bed.histDirty);
    });
    // Tiles the feed has not described (before hello, or while down) still show the state.
    Array.prototype.forEach.call(document.querySelectorAll(".tile"), function (t) {
      var id = t.getAttribute("data-bed");
      if (!S.feedUp || !S.beds[id]) {
        build(t, id);
        setAttr(t, "data-feed", S.feedUp ? t.getAttribute("data-feed") : "down");
      }
    });
    orderTiles();
    renderAlarms();
  }

  window.VigilPaint = {
    paintBed: paintBed,
    paintHeader: paintHeader,
    renderAlarms: renderAlarms,
    repaintAll: repaintAll,
    drawTrend: drawTrend,
    announce: announce,
  };
})();
