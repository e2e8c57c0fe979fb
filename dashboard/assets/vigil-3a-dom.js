/*
 * Vigil panel, 3 of 5 (a): the small DOM helpers every painter (vigil-3b to -3e) shares.
 *
 * Each writes only when the value changes, so a repaint that finds nothing new touches
 * nothing in the page.
 */
(function () {
  "use strict";

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

  window.VigilDom = {
    byId: byId,
    setText: setText,
    setAttr: setAttr,
    make: make,
  };
})();
