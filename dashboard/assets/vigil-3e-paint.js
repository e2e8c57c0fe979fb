/*
 * Vigil panel, 3 of 5 (e): the painter's entry points (window.VigilPaint): the header's feed,
 * sound and order state, the tiles' optional alarms-first order, and the repaint of the
 * whole page from window.vigil.state, tiles (vigil-3c-tiles.js), their mini-trends
 * (vigil-3b-trend.js) and the alarm list (vigil-3d-alarms.js).
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
  var T = window.VigilTiles;
  var build = T.build;
  var paintBed = T.paintBed;
  var drawTrend = window.VigilTrend.drawTrend;
  var renderAlarms = window.VigilAlarms.renderAlarms;

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
