// The dashboard: compliance by product and classification, the required-updates trend,
// computers not reporting, the last synchronizations and the components' health. Each
// panel loads on its own, so one slow or refused call never blanks the page.

import { get, getPage, report, qs } from '../api.js';
import { h, clear, heading, num, pct, when, badge, table, showError, link, every } from '../ui.js';
import { stackedBars, lineChart } from '../charts.js';

const KEYS = [
  { key: 'required', label: 'Required' },
  { key: 'installed', label: 'Installed' },
  { key: 'not_required', label: 'Not required' },
  { key: 'unknown', label: 'Unknown' },
];

const NOT_REPORTING_DAYS = 7;

function panel(title, id) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  const p = h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), body);
  return { p, body };
}

export function render(main) {
  const tiles = h('div', { class: 'tiles', role: 'list', 'aria-label': 'Site at a glance' });
  const product = panel('Compliance by product', 'd-product');
  const classification = panel('Compliance by classification', 'd-class');
  const trend = panel('Required updates over time', 'd-trend');
  const silent = panel(`Computers not reporting (${NOT_REPORTING_DAYS} days)`, 'd-silent');
  const syncs = panel('Last synchronizations', 'd-sync');
  const health = panel('Component status', 'd-health');
  main.append(...heading('Dashboard'), tiles,
    h('div', { class: 'grid' }, product.p, classification.p, trend.p, silent.p, syncs.p, health.p));

  const tile = (label, value, cls, href) => h('div', { class: `tile ${cls || ''}`, role: 'listitem' },
    h('span', { class: 'value' }, href ? link(href, value) : value), h('span', { class: 'label' }, label));

  async function load() {
    const [rowsR, clientsR, silentR, syncR, trendR, healthR] = await Promise.allSettled([
      report('compliance-by-classification'),
      getPage(`/clients${qs({ limit: 1 })}`),
      getPage(`/clients${qs({ limit: 10, not_reporting_days: NOT_REPORTING_DAYS })}`),
      get('/sync'),
      get(`/compliance/trend${qs({ days: 30 })}`),
      get('/status-messages/summary'),
    ]);

    // Tiles.
    const t = [];
    if (clientsR.status === 'fulfilled') t.push(tile('Computers', num(clientsR.value.total), '', '#/computers'));
    if (silentR.status === 'fulfilled') {
      t.push(tile(`Not reporting for ${NOT_REPORTING_DAYS} days`, num(silentR.value.total), silentR.value.total ? 'bad' : 'good'));
    }
    if (rowsR.status === 'fulfilled') {
      const sum = (k) => rowsR.value.rows.reduce((s, r) => s + (Number(r[k]) || 0), 0);
      const req = sum('required');
      const inst = sum('installed');
      const unk = sum('unknown');
      t.push(tile('Required (computer × update)', num(req), req ? 'bad' : 'good', '#/updates?required=1'));
      t.push(tile('Compliant (installed of applicable)', pct(inst, req + inst + unk), ''));
    }
    if (syncR.status === 'fulfilled') {
      const last = syncR.value.runs[0];
      t.push(tile('Content version', num(syncR.value.content_version), '', '#/sync'));
      t.push(tile('Last sync', last ? last.state : 'never', last && last.state === 'failed' ? 'bad' : '', '#/sync'));
    }
    clear(tiles, t);

    // Compliance charts.
    for (const [p, byKey, title] of [[product, 'product', 'Compliance by product'], [classification, 'classification', 'Compliance by classification']]) {
      p.body.removeAttribute('aria-busy');
      if (rowsR.status !== 'fulfilled') { showError(p.body, rowsR.reason, 'load compliance'); continue; }
      const groups = new Map();
      for (const r of rowsR.value.rows) {
        const g = groups.get(r[byKey]) || { label: r[byKey], parts: { required: 0, installed: 0, not_required: 0, unknown: 0 } };
        for (const k of KEYS) g.parts[k.key] += Number(r[k.key]) || 0;
        groups.set(r[byKey], g);
      }
      const rows = [...groups.values()].sort((a, b) => b.parts.required - a.parts.required || a.label.localeCompare(b.label));
      clear(p.body, rows.length
        ? stackedBars({ title, desc: `Computer and update pairs by state, per ${byKey}.`, rows, keys: KEYS })
        : h('p', { class: 'empty' }, 'No updates yet: synchronize the site first.'),
      h('p', { class: 'hint' }, 'From the report ', link('#/reports/compliance-by-classification', 'compliance-by-classification'), '.'));
    }

    // Trend.
    trend.body.removeAttribute('aria-busy');
    if (trendR.status !== 'fulfilled' && trendR.reason && trendR.reason.status === 403) {
      // A scoped administrator: the trend counts every client, so the site does not show it.
      clear(trend.body, h('p', { class: 'hint' }, trendR.reason.message, '.'));
    } else if (trendR.status !== 'fulfilled') showError(trend.body, trendR.reason, 'load the trend');
    else {
      // The stored samples, and the counts now as the last point.
      const pts = [...trendR.value.points, trendR.value.current].map((p) => ({ ...p, t: Date.parse(p.time) }));
      clear(trend.body,
        lineChart({
          title: 'Required updates over the last 30 days',
          desc: `Computer and update pairs Required and Unknown, sampled by the site every ${trendR.value.interval_minutes} minutes, and now.`,
          series: [
            { key: 'required', label: 'Required', points: pts.map((p) => ({ t: p.t, v: p.required })) },
            { key: 'unknown', label: 'Unknown', points: pts.map((p) => ({ t: p.t, v: p.unknown })) },
          ],
        }),
        h('p', { class: 'hint' }, `Now: ${num(trendR.value.current.required)} required pairs over ${num(trendR.value.current.updates_required)} updates; ${num(trendR.value.points.length)} stored samples.`));
    }

    // Computers not reporting.
    silent.body.removeAttribute('aria-busy');
    if (silentR.status !== 'fulfilled') showError(silent.body, silentR.reason, 'load the computers');
    else {
      clear(silent.body, table('Computers not reporting', [
        { label: 'Computer', value: (c) => link(`#/computers/${encodeURIComponent(c.name)}`, c.name) },
        { label: 'Last contact', value: (c) => when(c.last_contact) },
        { label: 'Last scan', value: (c) => when(c.last_scan) },
      ], silentR.value.rows, { empty: `Every computer has reported in the last ${NOT_REPORTING_DAYS} days.` }),
      silentR.value.total > silentR.value.rows.length
        ? h('p', {}, link(`#/computers?not_reporting_days=${NOT_REPORTING_DAYS}`, `All ${num(silentR.value.total)} computers not reporting`))
        : null);
    }

    // Syncs.
    syncs.body.removeAttribute('aria-busy');
    if (syncR.status !== 'fulfilled') showError(syncs.body, syncR.reason, 'load the synchronizations');
    else {
      clear(syncs.body, table('Last synchronizations', [
        { label: 'Started', value: (r) => when(r.started) },
        { label: 'Kind', value: (r) => r.kind },
        { label: 'Result', value: (r) => badge(r.state) },
        { label: 'Changed', num: true, value: (r) => num(r.items) },
      ], syncR.value.runs.slice(0, 5), { empty: 'The site has not synchronized yet.' }),
      h('p', {}, link('#/sync', 'Synchronization')));
    }

    // Component health.
    health.body.removeAttribute('aria-busy');
    if (healthR.status !== 'fulfilled') showError(health.body, healthR.reason, 'load the component status');
    else {
      const rows = [...healthR.value].sort((a, b) => rank(b.status) - rank(a.status)).slice(0, 8);
      clear(health.body, table('Component status', [
        { label: 'Component', value: (c) => link(`#/status?component=${encodeURIComponent(c.component)}`, c.component) },
        { label: 'System', value: (c) => c.system },
        { label: 'Status', value: (c) => badge(c.status.toLowerCase(), c.status) },
        { label: 'Errors', num: true, value: (c) => num(c.errors) },
        { label: 'Warnings', num: true, value: (c) => num(c.warnings) },
      ], rows, { empty: 'No component has reported today.' }));
    }
  }

  load();
  // The dashboard follows the site every minute while it is open.
  return every(60000, load);
}

function rank(s) {
  return { Critical: 2, Warning: 1 }[s] || 0;
}
