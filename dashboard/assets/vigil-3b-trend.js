/*
 * Vigil panel, 3 of 5 (b): a tile's 15-minute mini-trend, drawn on its canvas
 * (tile-{bed}-trend) from window.vigil.state's history; the tile (vigil-3c-tiles.js) asks for
 * it when it is new, the ticker (vigil-3e-paint.js) at most once a second.
 */
(function () {
  "use strict";

  var F = window.VigilFmt;
  var V = window.VigilState;
  var Dom = window.VigilDom;
  var byId = Dom.byId;
  var setAttr = Dom.setAttr;
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

  window.VigilTrend = {
    drawTrend: drawTrend,
  };
})();
