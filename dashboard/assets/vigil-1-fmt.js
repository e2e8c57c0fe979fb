/*
 * Vigil panel, 1 of 5: the shared constants and the words a nurse reads.
 *
 * Constants come from the page (#vigil-config[data-constants], written once by
 * dashboard/constants.py from the clinic config): no threshold is copied here.
 * Formatters turn the monitor's data into plain words: "14:06", "3 min ago",
 * "SpO\u2082 below 90 %: medium", integers, never a config key or an ISO stamp. The words
 * for phases, priorities, checks and the record line come from the page too
 * (dashboard/words.py), so the ward and the bed page never word them differently.
 */
(function () {
  "use strict";

  // Before Dash's first render the page has no #vigil-config yet; nothing that reads a
  // constant runs then (tiles, alarms and sound start with the feed, after the login page),
  // so there is no copy of them here to fall back on.
  var NONE = {};
  var cache = null;

  function constants() {
    if (cache) return cache;
    var el = document.getElementById("vigil-config");
    var raw = el && el.getAttribute("data-constants");
    if (!raw) return NONE; // not in the page yet: ask again next time
    cache = JSON.parse(raw);
    return cache;
  }
  // The words a nurse reads for a phase, a priority, a check and a record (dashboard/words.py)
  // and the monitor's codes by enum name (codes().phase.ENDED): no copy of either lives here.
  // Before the page has them, the same shape without a word or a code in it: a lookup then
  // finds nothing instead of throwing.
  var NO_WORDS = { phase_title: {}, priority: {}, badge: {}, check: {}, blocked: {}, record_event: {} };
  var NO_CODES = { phase: {}, priority: {}, alarm_state: {}, direction: {} };
  function words() {
    return constants().words || NO_WORDS;
  }
  function codes() {
    return constants().codes || NO_CODES;
  }

  var YEAR_S = 365.25 * 86400;
  var NAME = { hr: "HR", pr: "Pulse", spo2: "SpO\u2082", rr: "RR", sbp: "Systolic BP", dbp: "Diastolic BP", map: "Mean BP", bp: "NIBP" };
  var UNIT = { hr: "/min", pr: "/min", spo2: "%", rr: "/min", sbp: "mmHg", dbp: "mmHg", map: "mmHg", bp: "mmHg" };
  var OP = { "<": "below", "<=": "at or below", ">": "above", ">=": "at or above" };
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function parseTs(ts) {
    var t = typeof ts === "string" ? Date.parse(ts) : NaN;
    return isNaN(t) ? null : t;
  }
  // A duration as a pump shows it: 23:41, 1:02:03.
  function clock(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "--:--";
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600),
      m = Math.floor((s % 3600) / 60),
      sec = s % 60;
    return h ? h + ":" + pad(m) + ":" + pad(sec) : pad(m) + ":" + pad(sec);
  }
  // A length of time in words: 45 s, 3 min, 2 h 3 min, 3 d, 15 y (another day or year must
  // read as old at a glance, not as "135729 h").
  function span(a) {
    if (a === null || a === undefined || isNaN(a)) return "";
    a = Math.max(0, a);
    if (a < 60) return Math.floor(a) + " s";
    if (a < 3600) return Math.floor(a / 60) + " min";
    if (a < 86400) return Math.floor(a / 3600) + " h " + Math.floor((a % 3600) / 60) + " min";
    if (a < YEAR_S) return Math.floor(a / 86400) + " d";
    return Math.floor(a / YEAR_S) + " y";
  }
  function ago(a) {
    var s = span(a);
    return s ? s + " ago" : "";
  }
  // Local wall clock, 14:06.
  function localClock(ms) {
    if (ms === null || ms === undefined) return "";
    var d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  // Plotly's naive local time string, for the bed page trend's live appends.
  function localX(ms) {
    var d = new Date(ms);
    var msPart = String(d.getMilliseconds());
    while (msPart.length < 3) msPart = "0" + msPart;
    return (
      d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + msPart
    );
  }
  function value(v) {
    return typeof v === "number" && isFinite(v) ? String(Math.round(v)) : "--";
  }
  // Thresholds as whole numbers: a limit relative to baseline (82 + 30 % = 106.6) reads 107.
  function number(text) {
    var n = Number(text);
    return isFinite(n) ? String(Math.round(n)) : String(text);
  }
  function plainNames(text) {
    return String(text)
      .replace(/\bSpO2\b/g, "SpO\u2082")
      .replace(/\bspo2\b/g, "SpO\u2082");
  }
  function capital(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  // The condition the monitor wrote ("spo2 < 90", "sbp >= 180", "no data from X for 10 s")
  // in a nurse's words, with the value that triggered it and the priority in words.
  function alarmText(a) {
    if (!a) return "";
    var text;
    if (a.kind === "technical" && a.signal === "device") {
      text = "No data from " + (a.device_id || "the device");
    } else {
      var c = String(a.condition || a.signal || "alarm");
      var m = /^(\w+) (<=|>=|<|>) (-?[\d.]+)(.*)$/.exec(c);
      var cp = /^(\w+) check \S+ overdue$/.exec(c);
      if (m && NAME[m[1]]) {
        text = NAME[m[1]] + " " + OP[m[2]] + " " + number(m[3]) + " " + UNIT[m[1]] + plainNames(m[4]);
        if (typeof a.value === "number") text += " (now " + value(a.value) + ")";
      } else if (cp) {
        text = (words().check[cp[1]] || cp[1].toUpperCase()) + " check overdue";
      } else {
        text = capital(plainNames(c));
      }
    }
    return text + ": " + (words().priority[a.priority] || a.priority || "");
  }

  // Where a session stands in its patient's course ({n, planned} from the monitor):
  // "Infusion 3 of 6", "Session 3 of 8" for an intranasal protocol, "Infusion 7 (series of 6)"
  // past the planned series; "" without course information.
  function courseText(course, protocol) {
    if (!course || typeof course.n !== "number") return "";
    var noun = (constants().course_noun || {})[protocol] || words().course_noun;
    var n = Math.round(course.n);
    var planned = typeof course.planned === "number" ? Math.round(course.planned) : null;
    if (!planned) return noun + " " + n;
    return n <= planned ? noun + " " + n + " of " + planned : noun + " " + n + " (series of " + planned + ")";
  }

  // The session's stored history holds an event that does not fit (the monitor's
  // record_problem): what the nurse reads and whom to ask; "" when the record is fine. The
  // sentence is dashboard/words.py's RECORD_LINE, the one the bed page shows.
  function recordText(problem) {
    if (!problem) return "";
    var W = words();
    var what = W.record_event[problem.type] || W.record_unknown;
    var which =
      typeof problem.event_id === "number" ? W.record_event_id.replace("{id}", String(Math.round(problem.event_id))) : "";
    return W.record_line.replace("{what}", what).replace("{which}", which);
  }

  window.VigilFmt = {
    constants: constants,
    words: words,
    codes: codes,
    parseTs: parseTs,
    clock: clock,
    span: span,
    ago: ago,
    localClock: localClock,
    localX: localX,
    value: value,
    alarmText: alarmText,
    courseText: courseText,
    recordText: recordText,
    NAME: NAME,
    UNIT: UNIT,
  };
})();
