/* segapp browser-side helpers: clientside callbacks (no server round trip) and keyboard shortcuts. */
(function () {
  "use strict";

  function plotDiv(id) {
    var el = document.getElementById(id);
    return el ? el.querySelector(".js-plotly-plot") || el : null;
  }

  /* Screen pixels per image pixel at the current zoom (1 when unknown). */
  function zoomScale(gd) {
    var fl = gd && gd._fullLayout;
    var xa = fl && fl.xaxis;
    if (!xa || !xa.range || !xa._length) return 1;
    var span = Math.abs(xa.range[1] - xa.range[0]);
    return span > 0 ? xa._length / span : 1;
  }

  function classColor(classes, id) {
    if (id === 0) return "#ffffff";
    for (var i = 0; i < (classes || []).length; i++) if (classes[i].id === id) return classes[i].color;
    return "#888888";
  }

  var ZOOM_KEYS = /^(xaxis|yaxis|autosize|dragmode)/;

  /* Strokes echoed back to the figure are never editable (Plotly marks browser-drawn shapes editable:true;
     an editable stroke swallows the next drag and shows vertex handles that move training labels). */
  function lockedShapes(shapes) {
    return (shapes || []).map(function (s) { return Object.assign({}, s, { editable: false }); });
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    segapp: {
      /* Overlay opacity: patch the opacity of every overlay tile, nothing goes to the server. */
      opacity: function (value) {
        var gd = plotDiv("canvas");
        var n = gd && gd.layout && gd.layout.images ? gd.layout.images.length : 0;
        var patch = new window.dash_clientside.Patch();
        for (var i = 0; i < n; i++) patch.assign(["layout", "images", i, "opacity"], value);
        return patch.build();
      },

      /* New overlay tiles from the server: patch each into its layout image if its plane is still on
         screen (figure uirevision) and it is not older or coarser than what that tile already shows. */
      overlay: function (data, graphId) {
        var nu = window.dash_clientside.no_update;
        var gd = plotDiv(graphId);
        if (!data || !gd || !gd.layout || gd.layout.uirevision !== data.key || !gd.layout.images) return [nu, nu];
        var imgs = gd.layout.images, patch = new window.dash_clientside.Patch(), changed = false;
        var names = imgs.map(function (im) { return im.visible ? String(im.name || "0:0") : "0:0"; });
        if (data.clear) {
          for (var j = 0; j < imgs.length; j++) { patch.assign(["layout", "images", j, "visible"], false); names[j] = "0:0"; }
          changed = imgs.length > 0;
        }
        (data.tiles || []).forEach(function (t) {
          if (!imgs[t.i]) return;
          var had = names[t.i].split(":"), hv = Number(had[0]), hs = Number(had[1]) || 99;
          if (hv > 0 && (t.v < hv || (t.v === hv && t.s > hs))) return; // keep the newer / finer one
          patch.assign(["layout", "images", t.i, "source"], t.uri)
               .assign(["layout", "images", t.i, "visible"], true)
               .assign(["layout", "images", t.i, "name"], t.v + ":" + t.s);
          names[t.i] = t.v + ":" + t.s;
          changed = true;
        });
        // what the browser shows now, for the server's catch-up (fill_tiles)
        var v = data.version || 0, seen = [];
        names.forEach(function (n, i) { var p = n.split(":"); if (Number(p[0]) === v) seen.push(i + ":" + p[1]); });
        var seenData = { key: data.key, v: v, tiles: seen };
        if (!changed) return [nu, seenData];
        if (gd.layout.shapes) patch.assign(["layout", "shapes"], lockedShapes(gd.layout.shapes));
        return [patch.build(), seenData];
      },

      /* The visible region in image pixels and its width on screen, for viewport-first prediction. */
      view: function (relayout, _info, graphId) {
        var trig0 = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
        if (trig0.length === 1 && trig0[0].indexOf("canvas-info") >= 0) {
          // a new image was just sent: read its axes once Plotly has drawn it
          return new Promise(function (resolve) {
            setTimeout(function () { resolve(window.dash_clientside.segapp.viewNow(null, graphId)); }, 250);
          });
        }
        return window.dash_clientside.segapp.viewNow(relayout, graphId);
      },

      viewNow: function (relayout, graphId) {
        var nu = window.dash_clientside.no_update;
        var gd = plotDiv(graphId);
        var fl = gd && gd._fullLayout;
        if (!fl || !fl.xaxis || !fl.xaxis.range || !fl.yaxis || !fl.yaxis.range) return nu;
        var keys = Object.keys(relayout || {});
        if (relayout && !keys.some(function (k) { return /^(xaxis|yaxis|autosize)/.test(k); })) return nu;
        var xr = fl.xaxis.range, yr = fl.yaxis.range;
        return { x0: Math.min(xr[0], xr[1]), x1: Math.max(xr[0], xr[1]), y0: Math.min(yr[0], yr[1]),
                 y1: Math.max(yr[0], yr[1]), px: fl.xaxis._length || 0 };
      },

      /* The brush: colour and name of the active class; line width scaled so that a brush of
         W image pixels looks W image pixels wide at the current zoom. */
      brush: function (relayout, active, width, classes, _info, graphId) {
        var nu = window.dash_clientside.no_update;
        var trig = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
        var fromRelayout = trig.length === 1 && trig[0].indexOf("relayoutData") >= 0;
        if (fromRelayout && !Object.keys(relayout || {}).some(function (k) { return ZOOM_KEYS.test(k); })) {
          return [nu, nu];
        }
        if (trig.length === 1 && trig[0].indexOf("canvas-info") >= 0) {
          // a new image was just sent: measure once Plotly has drawn it
          var self = this, args = [relayout, active, width, classes, null, graphId];
          return new Promise(function (resolve) {
            setTimeout(function () { resolve(window.dash_clientside.segapp.brushNow.apply(self, args)); }, 200);
          });
        }
        return window.dash_clientside.segapp.brushNow(relayout, active, width, classes, null, graphId);
      },

      brushNow: function (relayout, active, width, classes, _info, graphId) {
        var nu = window.dash_clientside.no_update;
        var gd = plotDiv(graphId);
        if (!gd || !gd._fullLayout || !gd.data || gd.data.length < 1) return [nu, nu];
        var scale = zoomScale(gd);
        var w = Number(width) || 1;
        var color = classColor(classes, active);
        var newshape = {
          name: "class=" + active + ";width=" + w,
          line: { color: color, width: Math.max(1, Math.round(w * scale * 100) / 100), dash: active === 0 ? "dot" : "solid" },
          fillcolor: color, opacity: 0.75, layer: "above"
        };
        var patch = new window.dash_clientside.Patch().assign(["layout", "newshape"], newshape);
        // keep strokes drawn since the last server update (the figure prop may not have them yet)
        if (gd.layout && gd.layout.shapes) patch.assign(["layout", "shapes"], lockedShapes(gd.layout.shapes));
        return [patch.build(), scale];
      }
    }
  });

  /* Files over the server's limit, or a batch larger than one request may carry, are stopped in the
     browser with a message (never sent). */
  function tooLarge(files) {
    var el = document.getElementById("upload-limit");
    if (!el || !files) return [];
    var limit = Number(el.getAttribute("data-bytes")), mb = el.getAttribute("data-mb");
    var msgs = Array.prototype.filter.call(files, function (f) { return f.size > limit; }).map(function (f) {
      return f.name + " is " + Math.round(f.size / 1048576) + " MB; this server accepts files up to " + mb + " MB.";
    });
    var total = Array.prototype.reduce.call(files, function (t, f) { return t + f.size; }, 0);
    if (!msgs.length && files.length > 1 && total > limit) {
      msgs.push("These " + files.length + " files are " + Math.round(total / 1048576) + " MB together; this server " +
                "accepts up to " + mb + " MB in one upload. Add them in smaller batches.");
    }
    return msgs;
  }

  function refuse(ev, files) {
    var msgs = tooLarge(files);
    if (!msgs.length) return;
    ev.stopPropagation();
    ev.preventDefault();
    if (ev.target && ev.target.value !== undefined && ev.target.type === "file") ev.target.value = "";
    window.dash_clientside.set_props("client-alert", { children: msgs.join(" "), is_open: true });
  }

  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.type === "file") refuse(ev, ev.target.files);
  }, true);
  document.addEventListener("drop", function (ev) {
    if (ev.dataTransfer) refuse(ev, ev.dataTransfer.files);
  }, true);

  /* Keyboard: 1-9 choose a class, 0 the eraser, Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo / redo. */
  function typing(el) {
    if (!el) return false;
    var tag = (el.tagName || "").toLowerCase();
    return el.isContentEditable || tag === "input" || tag === "textarea" || tag === "select";
  }

  function click(selector) {
    var el = document.querySelector(selector);
    if (el) el.click();
  }

  document.addEventListener("keydown", function (ev) {
    if (typing(ev.target)) return;
    var k = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && (k === "z" || k === "Z")) {
      ev.preventDefault();
      click(ev.shiftKey ? "#redo" : "#undo");
      return;
    }
    if ((ev.ctrlKey || ev.metaKey) && (k === "y" || k === "Y")) {
      ev.preventDefault();
      click("#redo");
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (k >= "1" && k <= "9") {
      var rows = document.querySelectorAll("#class-list .class-select:not(.eraser-row)");
      var i = Number(k) - 1;
      if (i < rows.length - 1) rows[i].click(); // the last row is the eraser
    } else if (k === "0") {
      var all = document.querySelectorAll("#class-list .class-select");
      if (all.length) all[all.length - 1].click();
    }
  });
})();
