// Charts as inline SVG, drawn through the DOM (no library, nothing fetched). Each chart is
// a <figure> whose SVG has a title and description for screen readers, a legend, and the
// same numbers as a table under "Data as a table".

import { h, num, table } from './ui.js';

let seq = 0;

function svg(tag, attrs = {}, ...children) {
  return h(`svg:${tag}`, attrs, ...children);
}

function frame(title, desc, width, height, body, legend, data) {
  seq += 1;
  const tid = `chart-t${seq}`;
  const did = `chart-d${seq}`;
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${tid} ${did}`,
    preserveAspectRatio: 'xMinYMin meet',
  }, svg('title', { id: tid }, title), svg('desc', { id: did }, desc), body);
  return h('figure', { class: 'chart' },
    legend ? legendOf(legend) : null,
    root,
    data ? h('details', { class: 'data' }, h('summary', {}, 'Data as a table'), data) : null);
}

function legendOf(keys) {
  return h('ul', { class: 'legend', 'aria-hidden': 'true' }, keys.map((k) => h('li', {},
    svg('svg', { viewBox: '0 0 10 10' }, svg('rect', { width: 10, height: 10, class: `s-${k.key}` })),
    k.label)));
}

/**
 * Horizontal stacked bars, one per row: rows [{ label, href?, parts: { key: value } }],
 * keys [{ key, label }]. Each bar is 100 % of its row's total, with the total at its end.
 */
export function stackedBars({ title, desc, rows, keys, width = 560 }) {
  const labelW = 170;
  const barW = width - labelW - 70;
  const rowH = 26;
  const height = rows.length * rowH + 6;
  const g = svg('g', {});
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const total = keys.reduce((s, k) => s + (Number(r.parts[k.key]) || 0), 0);
    const label = r.label.length > 24 ? `${r.label.slice(0, 23)}…` : r.label;
    g.append(svg('text', { x: 0, y: y + 14 }, label));
    let x = labelW;
    for (const k of keys) {
      const v = Number(r.parts[k.key]) || 0;
      if (!total || !v) continue;
      const w = Math.max(1, (barW * v) / total);
      g.append(svg('rect', { x, y, width: w, height: rowH - 8, class: `s-${k.key}` },
        svg('title', {}, `${r.label}: ${k.label} ${num(v)} of ${num(total)}`)));
      x += w;
    }
    if (!total) g.append(svg('rect', { x: labelW, y, width: barW, height: rowH - 8, class: 's-unknown' }));
    g.append(svg('text', { x: labelW + barW + 6, y: y + 14 }, num(total)));
  });
  const data = table(title, [
    { label: 'Row', value: (r) => r.label },
    ...keys.map((k) => ({ label: k.label, num: true, value: (r) => num(r.parts[k.key]) })),
  ], rows);
  return frame(title, desc, width, height, g, keys, data);
}

/**
 * Lines over time: series [{ key, label, points: [{ t (ms), v }] }]. The y axis starts at 0;
 * the x axis spans the points' times.
 */
export function lineChart({ title, desc, series, width = 560, height = 220, yLabel = '' }) {
  const all = series.flatMap((s) => s.points);
  const left = 56;
  const bottom = 26;
  const top = 10;
  const right = 12;
  const g = svg('g', {});
  if (all.length === 0) {
    g.append(svg('text', { x: left, y: height / 2 }, 'No samples yet.'));
    return frame(title, desc, width, height, g, null, null);
  }
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t));
  const vmax = Math.max(1, ...all.map((p) => p.v));
  const nice = niceMax(vmax);
  const X = (t) => left + (t1 === t0 ? (width - left - right) / 2 : ((t - t0) / (t1 - t0)) * (width - left - right));
  const Y = (v) => top + (1 - v / nice) * (height - top - bottom);
  for (let i = 0; i <= 4; i += 1) {
    const v = (nice * i) / 4;
    g.append(svg('line', { x1: left, x2: width - right, y1: Y(v), y2: Y(v), class: 'grid-line' }));
    g.append(svg('text', { x: left - 6, y: Y(v) + 4, 'text-anchor': 'end' }, Number.isInteger(v) ? num(v) : v.toFixed(1)));
  }
  const fmt = (t) => new Date(t).toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  g.append(svg('text', { x: left, y: height - 6 }, fmt(t0)));
  g.append(svg('text', { x: width - right, y: height - 6, 'text-anchor': 'end' }, fmt(t1)));
  if (yLabel) g.append(svg('text', { x: left + 4, y: top + 10 }, yLabel));
  for (const s of series) {
    if (!s.points.length) continue;
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`).join(' ');
    const area = `${d} L${X(pts[pts.length - 1].t).toFixed(1)},${Y(0)} L${X(pts[0].t).toFixed(1)},${Y(0)} Z`;
    g.append(svg('path', { d: area, class: `area s-${s.key}` }));
    g.append(svg('path', { d, class: `line s-${s.key}` }));
    const last = pts[pts.length - 1];
    g.append(svg('circle', { cx: X(last.t), cy: Y(last.v), r: 3.5, class: `s-${s.key}` },
      svg('title', {}, `${s.label}: ${num(last.v)} at ${new Date(last.t).toLocaleString()}`)));
  }
  const times = [...new Set(all.map((p) => p.t))].sort((a, b) => a - b);
  const data = table(title, [
    { label: 'Time', value: (t) => new Date(t).toLocaleString() },
    ...series.map((s) => ({ label: s.label, num: true, value: (t) => num((s.points.find((p) => p.t === t) || {}).v) })),
  ], times);
  return frame(title, desc, width, height, g, series.map((s) => ({ key: s.key, label: s.label })), data);
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * One bar split by state, for a deployment's progress: parts [{ key, label, value }].
 */
export function progressBar({ title, desc, parts, width = 640 }) {
  const total = parts.reduce((s, p) => s + p.value, 0);
  const g = svg('g', {});
  let x = 0;
  const barH = 28;
  for (const p of parts) {
    if (!p.value) continue;
    const w = Math.max(2, (width * p.value) / total);
    g.append(svg('rect', { x, y: 0, width: w, height: barH, class: `s-${p.key}` },
      svg('title', {}, `${p.label}: ${num(p.value)} of ${num(total)}`)));
    x += w;
  }
  if (!total) g.append(svg('rect', { x: 0, y: 0, width, height: barH, class: 's-unknown' }));
  const shown = parts.filter((p) => p.value);
  const data = table(title, [
    { label: 'State', value: (p) => p.label },
    { label: 'Computers', num: true, value: (p) => num(p.value) },
  ], shown);
  return frame(title, desc, width, barH, g, shown.map((p) => ({ key: p.key, label: `${p.label} (${num(p.value)})` })), data);
}
