// The status message viewer: filters (component, message ID, severity, system, since),
// the newest messages first, older ones page by page, and each message's insertion
// strings and attributes. The component status summary sits above it.

import { get, qs } from '../api.js';
import { h, severity, clear, heading, when, badge, table, field, select, routeParams, showError, num } from '../ui.js';

const PAGE = 100;

export function render(main) {
  const p = routeParams();
  const component = h('input', { name: 'component', value: p.get('component') || '', placeholder: 'SMS_WSUS_SYNC_MANAGER' });
  const id = h('input', { name: 'id', type: 'number', min: '0', value: p.get('id') || '' });
  const sev = select('severity', [['', 'Any'], ['E', 'Error'], ['W', 'Warning'], ['I', 'Informational']], p.get('severity') || '');
  const system = h('input', { name: 'system', value: p.get('system') || '' });
  const since = select('since', [['', 'Any time'], ['1', 'Last hour'], ['24', 'Last day'], ['168', 'Last 7 days']], p.get('since') || '');
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter status messages' },
    field('Component', component), field('Message ID', id), field('Severity', sev),
    field('System', system), field('Since', since), h('button', { type: 'submit', class: 'primary' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of [['component', component], ['id', id], ['severity', sev], ['system', system], ['since', since]]) {
      if (el.value.trim()) q.set(k, el.value.trim());
    }
    const s = q.toString();
    location.hash = `#/status${s ? `?${s}` : ''}`;
  });
  const summary = h('div', {});
  const list = h('div', {});
  const older = h('button', { type: 'button' }, 'Older messages');
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  main.append(...heading('Status messages'),
    h('section', { 'aria-labelledby': 'st-sum' }, h('h2', { id: 'st-sum' }, 'Component status today'), summary),
    h('section', { 'aria-labelledby': 'st-list' }, h('h2', { id: 'st-list' }, 'Messages'), form, list, count, older));

  const filters = {
    component: p.get('component') || undefined,
    id: p.get('id') || undefined,
    severity: p.get('severity') || undefined,
    system: p.get('system') || undefined,
    since: p.get('since') ? new Date(Date.now() - Number(p.get('since')) * 3600000).toISOString() : undefined,
  };
  let rows = [];
  const columns = [
    { label: 'Time', value: (m) => when(m.time) },
    { label: 'Severity', value: (m) => severity(m.severity) },
    { label: 'ID', num: true, value: (m) => m.message_id },
    { label: 'Component', value: (m) => m.component },
    { label: 'System', value: (m) => m.system },
    {
      label: 'Description', value: (m) => {
        const extra = [];
        if (m.insertion_strings.length) extra.push(h('li', {}, 'Insertion strings: ', m.insertion_strings.map((s, i) => `${i}: ${s}`).join('; ')));
        for (const [k, v] of Object.entries(m.attributes)) extra.push(h('li', {}, `${k}: ${v}`));
        return extra.length
          ? h('details', {}, h('summary', {}, m.description), h('ul', {}, extra))
          : m.description;
      },
    },
  ];
  async function more() {
    older.disabled = true;
    try {
      const before = rows.length ? rows[rows.length - 1].record_id : undefined;
      const page = await get(`/status-messages${qs({ ...filters, before, limit: PAGE })}`);
      rows = rows.concat(page.reverse());
      clear(list, table('Status messages, newest first', columns, rows, { empty: 'No status message matches.' }));
      count.textContent = `${num(rows.length)} messages shown.`;
      older.disabled = page.length < PAGE;
    } catch (e) { showError(list, e, 'load the status messages'); older.disabled = false; }
  }
  older.addEventListener('click', more);
  more();
  get(`/status-messages/summary${qs({ component: filters.component, system: filters.system })}`).then((s) => clear(summary, table('Component status', [
    { label: 'Component', value: (c) => c.component },
    { label: 'System', value: (c) => c.system },
    { label: 'Site', value: (c) => c.site },
    { label: 'Status', value: (c) => badge(c.status.toLowerCase(), c.status) },
    { label: 'Errors', num: true, value: (c) => num(c.errors) },
    { label: 'Warnings', num: true, value: (c) => num(c.warnings) },
    { label: 'Informational', num: true, value: (c) => num(c.informational) },
    { label: 'Last message', value: (c) => [when(c.last_time), ` — ${c.last_description}`] },
  ], s, { empty: 'No component has reported today.' }))).catch((e) => showError(summary, e, 'load the component status'));
  return null;
}
