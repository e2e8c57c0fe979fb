/*
 * Vigil panel, 4 of 5: sound (Web Audio; the browser allows it after one click).
 *
 * IEC 60601-1-8 patterns: high a 10-pulse burst (3+2, 3+2), medium 3 pulses, low 2 pulses
 * once; technical (connection lost, monitor degraded) two long falling tones every 10 s.
 * Only the most urgent unacknowledged, unpaused alarm of the ward sounds, repeated at the
 * intervals dashboard/constants.py gives. Sound on/off is announced to screen readers.
 *
 * Test hooks: window.vigil.tones (last tones due, sound on or off: {kind, loud, at, bed,
 * alarm}) and window.vigil.audio (what was actually scheduled, sound on only).
 */
(function () {
  "use strict";

  var F = window.VigilFmt;
  var V = window.VigilState;
  var S = V.S;
  var tones = [];
  var audioLog = [];

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
    var P = F.codes().priority;
    if (kind === P.HIGH) {
      // IEC 60601-1-8 high-priority burst: 10 pulses, 3+2 ... 3+2.
      [0, 0.2, 0.4, 0.75, 0.95, 1.9, 2.1, 2.3, 2.65, 2.85].forEach(function (o) {
        pulse(ctx, t + o, 880, 0.15, g, p);
      });
    } else if (kind === P.MEDIUM) {
      [0, 0.3, 0.6].forEach(function (o) { pulse(ctx, t + o, 660, 0.2, g, p); });
    } else if (kind === P.LOW) {
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
    var P = F.codes().priority;
    var ACK = F.codes().alarm_state.ACKNOWLEDGED;
    Object.keys(S.beds).forEach(function (id) {
      V.activeAlarms(S.beds[id]).forEach(function (a) {
        if (a.acknowledged_at || a.state === ACK || V.alarmPausedMs(a) > 0) return;
        if (a.priority === P.LOW && S.sound.lowPlayed[a.id]) return;
        if (!best || V.cmpAlarms(a, best) < 0) best = a;
      });
    });
    if (!best) return;
    var every = F.constants().tone_interval_s[best.priority];
    var interval = every ? 1000 * (best.escalated ? every.escalated : every.normal) : 0;
    var last = S.sound.last[best.priority] || 0;
    if (best.priority === P.LOW) {
      S.sound.lowPlayed[best.id] = true;
      play(P.LOW, best.escalated, best);
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
    window.VigilPaint.paintHeader();
    window.VigilPaint.announce(S.sound.on ? "Sound on: alarms will sound" : "Sound off: alarms are silent on this screen");
  }

  window.VigilSound = { tones: tones, audio: audioLog, tick: soundTick, toggle: toggleSound };
})();
