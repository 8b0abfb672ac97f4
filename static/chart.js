// A small SVG chart (bar, line, scatter) of two result columns. Nothing to download:
// the page works with no internet.
const kuraChart = {
  W: 720, H: 340, PAD: { l: 64, r: 16, t: 16, b: 56 },
  MAX_BARS: 60, MAX_POINTS: 5000,

  svg(tag, attrs, ...children) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  },

  num(v) {
    if (typeof v === "number") return v;
    if (typeof v === "string" && v.trim() !== "" && !isNaN(Number(v))) return Number(v);
    if (typeof v === "string" && /^\d{4}-\d\d-\d\d/.test(v)) { const t = Date.parse(v); if (!isNaN(t)) return t; }
    return null;
  },

  ticks(min, max, n) {
    if (min === max) { min -= 1; max += 1; }
    const step0 = (max - min) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  },

  label(v, dates) {
    if (dates) return new Date(v).toISOString().slice(0, 10);
    const a = Math.abs(v);
    if (a >= 1e9) return `${(v / 1e9).toFixed(1)}B`;
    if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
    return String(Number(v.toPrecision(6)));
  },

  // Draws `kind` of rows[x] against rows[y] into `slot`; returns a note about what was left out.
  draw(slot, kind, columns, rows, xi, yi) {
    const { W, H, PAD } = kuraChart;
    const s = kuraChart.svg;
    const plotW = W - PAD.l - PAD.r; const plotH = H - PAD.t - PAD.b;
    let note = "";
    let pts = rows.map((r) => [r[xi], kuraChart.num(r[yi])]).filter((p) => p[1] !== null);
    const skipped = rows.length - pts.length;
    if (skipped) note = `${skipped} row(s) without a number in ${columns[yi]} are left out. `;
    const root = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
      "aria-label": `${kind} chart of ${columns[yi]} by ${columns[xi]}` });
    if (!pts.length) { slot.replaceChildren(kura.el("p", { class: "muted" }, `No numbers in ${columns[yi]} to chart.`)); return; }

    const ys = pts.map((p) => p[1]);
    let yMin = Math.min(0, ...ys); let yMax = Math.max(0, ...ys);
    if (kind === "scatter") { yMin = Math.min(...ys); yMax = Math.max(...ys); }
    const yT = kuraChart.ticks(yMin, yMax, 5);
    yMin = Math.min(yMin, yT[0]); yMax = Math.max(yMax, yT[yT.length - 1]);
    const Y = (v) => PAD.t + plotH - ((v - yMin) / (yMax - yMin || 1)) * plotH;
    for (const t of yT) {
      root.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: Y(t), y2: Y(t), class: "grid-line" }),
        s("text", { x: PAD.l - 8, y: Y(t) + 4, "text-anchor": "end", class: "axis" }, kuraChart.label(t)));
    }

    if (kind === "bar") {
      if (pts.length > kuraChart.MAX_BARS) { note += `Showing the first ${kuraChart.MAX_BARS} of ${pts.length} bars.`; pts = pts.slice(0, kuraChart.MAX_BARS); }
      const bw = plotW / pts.length;
      pts.forEach(([x, y], i) => {
        const top = Math.min(Y(y), Y(0)); const h = Math.abs(Y(y) - Y(0));
        root.append(s("rect", { x: PAD.l + i * bw + bw * 0.1, y: top, width: Math.max(1, bw * 0.8), height: Math.max(1, h), class: "bar-rect" },
          s("title", {}, `${x}: ${y}`)));
        if (pts.length <= 24 || i % Math.ceil(pts.length / 24) === 0) {
          const tx = PAD.l + i * bw + bw / 2;
          root.append(s("text", { x: tx, y: H - PAD.b + 16, "text-anchor": "end", class: "axis", transform: `rotate(-35 ${tx} ${H - PAD.b + 16})` },
            String(x ?? "NULL").slice(0, 14)));
        }
      });
    } else {
      let xs = pts.map((p) => kuraChart.num(p[0]));
      if (xs.some((v) => v === null)) {
        slot.replaceChildren(kura.el("p", { class: "muted" }, `${columns[xi]} is not numeric or a date: use a bar chart.`));
        return;
      }
      const dates = pts.some((p) => typeof p[0] === "string");
      pts = pts.map((p, i) => [xs[i], p[1]]);
      if (kind === "line") pts.sort((a, b) => a[0] - b[0]);
      if (pts.length > kuraChart.MAX_POINTS) { note += `Showing ${kuraChart.MAX_POINTS} of ${pts.length} points.`; pts = pts.slice(0, kuraChart.MAX_POINTS); }
      xs = pts.map((p) => p[0]);
      let xMin = Math.min(...xs); let xMax = Math.max(...xs);
      if (xMin === xMax) { xMin -= 1; xMax += 1; }
      const X = (v) => PAD.l + ((v - xMin) / (xMax - xMin)) * plotW;
      for (const t of kuraChart.ticks(xMin, xMax, 6)) {
        if (t < xMin || t > xMax) continue;
        root.append(s("text", { x: X(t), y: H - PAD.b + 18, "text-anchor": "middle", class: "axis" }, kuraChart.label(t, dates)));
      }
      if (kind === "line") {
        root.append(s("polyline", { points: pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" "), class: "line-path" }));
      } else {
        for (const [x, y] of pts) root.append(s("circle", { cx: X(x), cy: Y(y), r: 3.5, class: "dot-point" }, s("title", {}, `${x}, ${y}`)));
      }
    }
    root.append(s("text", { x: PAD.l + plotW / 2, y: H - 6, "text-anchor": "middle", class: "axis-title" }, columns[xi]),
      s("text", { x: 14, y: PAD.t + plotH / 2, "text-anchor": "middle", class: "axis-title", transform: `rotate(-90 14 ${PAD.t + plotH / 2})` }, columns[yi]));
    slot.replaceChildren(root, ...(note ? [kura.el("p", { class: "muted small" }, note)] : []));
  },
};
window.kuraChart = kuraChart;
