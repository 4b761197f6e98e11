// charts.js — small line charts drawn as inline SVG (no library): a series
// is 60 per-minute values, a null is a gap in the line and has no point.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A "nice" step: 1, 2, (2.5,) 5 times a power of ten, at least 1 for counts.
  function niceStep(v, integer) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10])
      if (m * p >= v) return integer ? Math.max(1, m * p) : m * p;
    return 10 * p;
  }

  // The y axis for values up to raw: about 4 steps, the top a multiple of the step.
  function yAxis(raw, integer, emptyTop) {
    if (!(raw > 0)) raw = emptyTop || (integer ? 4 : 1);
    const step = niceStep(raw / 4, integer);
    const ticks = Math.max(1, Math.ceil(raw / step - 1e-9));
    return { step, ticks, top: step * ticks };
  }

  function hhmm(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  // Draws into container (its content replaced):
  //   opts.x       minute starts (ms), oldest first
  //   opts.series  [{name, values, cls}]
  //   opts.format  value -> axis / tooltip text
  function line(container, opts) {
    const W = Math.max(240, Math.floor(container.clientWidth || 360));
    const H = 168;
    const m = { l: 46, r: 10, t: 24, b: 34 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const fmt = opts.format || ((v) => String(v));
    const n = opts.x.length;
    let max = 0;
    for (const s of opts.series)
      for (const v of s.values) if (v !== null && v !== undefined && v > max) max = v;
    const ax = yAxis(max, !!opts.integer, opts.emptyTop);
    max = ax.top;
    const xOf = (i) => m.l + (n <= 1 ? pw : (i * pw) / (n - 1));
    const yOf = (v) => m.t + ph - (v / max) * ph;

    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart-svg",
      role: "img", "aria-label": opts.label || "" });

    // Grid and y axis: a line and a label at each step.
    const axis = el("g", { class: "axis" });
    for (let k = 0; k <= ax.ticks; k++) {
      const v = ax.step * k, y = yOf(v);
      axis.appendChild(el("line", { x1: m.l, x2: W - m.r, y1: y, y2: y, class: k ? "grid" : "base" }));
      axis.appendChild(el("text", { x: m.l - 6, y: y + 3.5, "text-anchor": "end" }, fmt(v)));
    }
    // x axis: a tick every 10 minutes, counted back from the current minute.
    for (let i = n - 1; i >= 0; i -= 10) {
      const x = xOf(i);
      axis.appendChild(el("line", { x1: x, x2: x, y1: m.t + ph, y2: m.t + ph + 4, class: "base" }));
      axis.appendChild(el("text", { x: x, y: m.t + ph + 16, "text-anchor": i === n - 1 ? "end" : "middle" },
        i === n - 1 ? "now" : hhmm(opts.x[i])));
    }
    if (opts.yLabel)
      axis.appendChild(el("text", { x: 12, y: m.t + ph / 2, "text-anchor": "middle",
        transform: `rotate(-90 12 ${m.t + ph / 2})`, class: "axis-label" }, opts.yLabel));
    axis.appendChild(el("text", { x: m.l + pw / 2, y: H - 3, "text-anchor": "middle", class: "axis-label" },
      opts.xLabel || "minute (local time)"));
    svg.appendChild(axis);

    for (const s of opts.series) {
      const g = el("g", { class: "series " + s.cls });
      let d = "", pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? "L" : "M") + xOf(i).toFixed(1) + " " + yOf(v).toFixed(1);
        pen = true;
      });
      if (d) g.appendChild(el("path", { d, class: "line" }));
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        // The current minute is not over: its point is drawn hollow.
        const now = i === n - 1;
        const c = el("circle", { cx: xOf(i).toFixed(1), cy: yOf(v).toFixed(1), r: now ? 2.8 : 2.2,
          class: now ? "point partial" : "point" });
        c.appendChild(el("title", {}, `${hhmm(opts.x[i])}${now ? " (this minute so far)" : ""}  ${s.name}: ${fmt(v, true)}`));
        g.appendChild(c);
      });
      svg.appendChild(g);
    }

    // Legend, above the plot.
    const legend = el("g", { class: "legend" });
    let lx = m.l + 2;
    for (const s of opts.series) {
      const g = el("g", { class: "series " + s.cls });
      g.appendChild(el("circle", { cx: lx + 4, cy: 9, r: 3.5, class: "point" }));
      g.appendChild(el("text", { x: lx + 11, y: 12.5 }, s.name));
      legend.appendChild(g);
      lx += 22 + s.name.length * 6.5;
    }
    svg.appendChild(legend);
    container.replaceChildren(svg);
  }

  window.Charts = { line };
})();
