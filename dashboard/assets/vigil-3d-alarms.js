/*
 * Vigil panel, 3 of 5 (d): the ward's alarm list, drawn in the server's empty #alarm-list:
 * one group per bed (most urgent first, with its audio pause button) and one row per active
 * alarm with its acknowledge button. Ids are a public test hook (docs/panel.md):
 * alarm-group-{bed}, alarm-{id}, ack-{id}, pause-{bed}.
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

  window.VigilAlarms = {
    renderAlarms: renderAlarms,
  };
})();
