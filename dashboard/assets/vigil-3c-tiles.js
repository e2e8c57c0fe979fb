/*
 * Vigil panel, 3 of 5 (c): a bed's tile, the one renderer of its live inside (vigil-3a to -3e
 * together are the one renderer of every live element).
 *
 * The server gives each bed an empty tile (class "tile", data-bed, the link to the bed
 * page, an empty tile-{bed}-body) and an empty #alarm-list; everything inside them is drawn
 * from window.vigil.state: here a tile's values, ages, the session clock, the next protocol
 * item, discharge and the alarm banner; its 15-minute mini-trend (a canvas) in
 * vigil-3b-trend.js, the alarm list in vigil-3d-alarms.js. Ids are a public test hook
 * (docs/panel.md): tile-{bed}-{hr|spo2|rr|bp}[-value|-age], -pr-value, -phase, -status, -due,
 * -record, -trend, -lost, -course-n, -course-link.
 */
(function () {
  "use strict";

  var F = window.VigilFmt;
  var V = window.VigilState;
  var S = V.S;
  var Dom = window.VigilDom;
  var byId = Dom.byId;
  var setText = Dom.setText;
  var setAttr = Dom.setAttr;
  var make = Dom.make;
  var drawTrend = window.VigilTrend.drawTrend;
  var VITALS = ["hr", "spo2", "rr", "bp"];
  var TILE_OF = { hr: "hr", pr: "hr", spo2: "spo2", rr: "rr", sbp: "bp", dbp: "bp", map: "bp" };

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


  window.VigilTiles = {
    build: build,
    paintBed: paintBed,
  };
})();
