// Reports: every report by category; one report with its parameters, its SQL, its rows
// paged by the site, a refresh every 1 to 60 minutes, and the whole result as CSV.

import { get, report, seg } from '../api.js';
import { h, clear, heading, num, when, table, field, select, showError, link, busy, announce, csv, download, routeParams } from '../ui.js';

const PAGE = 100;

export function render(main) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading('Reports'),
    h('p', { class: 'hint' }, 'Every report is a read-only SQL query over documented views; open one to run it and read its SQL.'),
    body);
  get('/reports').then((list) => {
    const byCat = new Map();
    for (const r of list) byCat.set(r.category, [...(byCat.get(r.category) || []), r]);
    clear(body, [...byCat.entries()].sort().map(([cat, rs], i) => h('section', { 'aria-labelledby': `rc${i}` },
      h('h2', { id: `rc${i}` }, cat || 'Other'),
      table(cat, [
        { label: 'Report', value: (r) => link(`#/reports/${seg(r.name)}`, r.title) },
        { label: 'Name', value: (r) => h('code', {}, r.name) },
        { label: 'Parameters', value: (r) => [...r.parameters, ...(r.optional_parameters || []).map((o) => `[${o}]`)].join(', ') },
        { label: 'Note', value: (r) => r.error || (r.completed_by ? `completed by ${r.completed_by}` : '') },
      ], rs))));
  }).catch((e) => showError(body, e, 'load the reports'));
}

export function renderOne(main, name) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading(name, [['#/reports', 'Reports']]), body);
  let timer = null;
  let stopped = false;
  (async () => {
    let info;
    try {
      info = (await get('/reports')).find((r) => r.name === name);
    } catch (e) { showError(body, e, 'load the report'); return; }
    if (!info) { showError(body, { message: `There is no report named ${name}.`, action: 'Pick one from the list of reports.' }); return; }
    main.querySelector('h1').textContent = info.title;
    const p = routeParams();
    const inputs = new Map();
    const fields = [];
    for (const [param, optional] of [...info.parameters.map((x) => [x, false]), ...(info.optional_parameters || []).map((x) => [x, true])]) {
      const input = h('input', { name: param, value: p.get(param) || '', required: !optional });
      inputs.set(param, input);
      fields.push(field(`${param}${optional ? ' (optional)' : ''}`, input));
    }
    const refresh = select('refresh', [['', 'Off'], ['1', 'Every minute'], ['5', 'Every 5 minutes'], ['15', 'Every 15 minutes'], ['30', 'Every 30 minutes'], ['60', 'Every 60 minutes']], p.get('refresh') || '');
    const run = h('button', { type: 'submit', class: 'primary' }, 'Run');
    const exportB = h('button', { type: 'button' }, 'Export CSV');
    const slot = h('div', {});
    const meta = h('p', { class: 'hint', 'aria-live': 'polite' });
    const rowsEl = h('div', {});
    const pagerEl = h('nav', { class: 'pager', 'aria-label': 'Report pages' });
    const form = h('form', { class: 'filters', 'aria-label': 'Report parameters' }, fields, field('Refresh', refresh), run, exportB);
    clear(body,
      info.description ? h('p', {}, info.description) : null,
      info.error ? h('div', { class: 'error', role: 'alert' }, `This report cannot run: ${info.error}`) : null,
      form, slot, meta, rowsEl, pagerEl,
      h('details', { class: 'panel', open: true }, h('summary', {}, 'SQL of this report'),
        h('p', { class: 'hint' }, info.source === 'built-in' ? 'Built in. Copy it to DATA/reports/NAME.sql to make your own.' : `From ${info.source}.`),
        h('pre', { class: 'sql', tabindex: '0', 'aria-label': `SQL of ${name}` }, info.sql)));

    const params = () => {
      const o = {};
      for (const [k, el] of inputs) if (el.value.trim()) o[k] = el.value.trim();
      return o;
    };
    let offset = 0;
    async function show(to) {
      if (timer) { clearTimeout(timer); timer = null; }
      const minutes = refresh.value;
      const r = await report(name, { ...params(), refresh_minutes: minutes || undefined, limit: PAGE, offset: to });
      offset = to;
      clear(rowsEl, table(info.title, r.columns.map((c) => ({
        label: c,
        num: r.rows.some((row) => typeof row[c] === 'number'),
        value: (row) => (typeof row[c] === 'number' ? num(row[c]) : row[c] ?? ''),
        header: false,
      })), r.rows, { empty: 'The report returned no rows.' }));
      const total = r.total ?? r.rows.length;
      clear(meta, `${num(total)} rows, generated `, when(r.generated), ` in ${num(r.duration_ms)} ms`,
        r.next_refresh ? ['; next refresh ', when(r.next_refresh)] : '', '.');
      clear(pagerEl);
      if (total > PAGE) {
        const prev = h('button', { type: 'button', disabled: to === 0 }, 'Previous');
        const next = h('button', { type: 'button', disabled: to + PAGE >= total }, 'Next');
        prev.addEventListener('click', () => show(Math.max(0, offset - PAGE)).catch((e) => showError(slot, e, 'run the report')));
        next.addEventListener('click', () => show(offset + PAGE).catch((e) => showError(slot, e, 'run the report')));
        pagerEl.append(prev, h('span', { class: 'muted' }, `${num(to + 1)}–${num(Math.min(total, to + PAGE))} of ${num(total)}`), next);
      }
      announce(`${info.title}: ${total} rows.`);
      if (r.next_refresh && !stopped) {
        const wait = Math.max(1000, Date.parse(r.next_refresh) - Date.now());
        timer = setTimeout(() => show(offset).catch((e) => showError(slot, e, 'refresh the report')), wait);
      }
    }
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams({ ...params(), ...(refresh.value ? { refresh: refresh.value } : {}) }).toString();
      history.replaceState(null, '', `#/reports/${seg(name)}${q ? `?${q}` : ''}`);
      busy(run, slot, 'run the report', () => show(0));
    });
    exportB.addEventListener('click', () => busy(exportB, slot, 'export the report', async () => {
      exportB.textContent = 'Exporting…';
      const r = await report(name, params());
      download(`${name}.csv`, csv(r.columns, r.rows));
      announce(`${r.rows.length} rows exported to ${name}.csv.`);
    }));
    if (info.parameters.every((x) => inputs.get(x).value.trim()) && !info.error) {
      busy(run, slot, 'run the report', () => show(0));
    }
  })();
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}
