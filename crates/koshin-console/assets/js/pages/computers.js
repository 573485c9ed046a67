// Computers: the enrolled clients, paged by the site and searchable; one computer with its
// compliance, inventory, deployments and status messages.

import { get, getPage, post, report, qs, seg, can } from '../api.js';
import { h, severity, clear, heading, num, when, badge, table, field, pager, routeParams, facts, showError, link, busy, announce } from '../ui.js';
import { stackedBars } from '../charts.js';

const PAGE = 50;

export function render(main) {
  const p = routeParams();
  const search = h('input', { type: 'search', name: 'search', value: p.get('search') || '', placeholder: 'name or client ID' });
  const days = h('input', { type: 'number', name: 'not_reporting_days', min: '1', max: '3650', value: p.get('not_reporting_days') || '' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter computers' },
    field('Search', search), field('Not reporting for (days)', days, 'Leave empty for every computer.'),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (search.value.trim()) q.set('search', search.value.trim());
    if (days.value) q.set('not_reporting_days', days.value);
    const s = q.toString();
    location.hash = `#/computers${s ? `?${s}` : ''}`;
  });
  const list = pager({
    label: 'Computers',
    limit: PAGE,
    load: (offset, limit, signal) => getPage(`/clients${qs({
      search: p.get('search'), not_reporting_days: p.get('not_reporting_days'), limit, offset,
    })}`, signal),
    render: (rows) => table('Computers', [
      { label: 'Computer', value: (c) => link(`#/computers/${seg(c.name)}`, c.name) },
      { label: 'Approval', value: (c) => badge(c.approval) },
      { label: 'Operating system', value: (c) => `${c.os} ${c.os_release}`.trim() },
      { label: 'Last contact', value: (c) => when(c.last_contact) },
      { label: 'Required', num: true, value: (c) => (c.required ? h('strong', {}, num(c.required)) : '0') },
      { label: 'Installed', num: true, value: (c) => num(c.installed) },
      { label: 'Unknown', num: true, value: (c) => num(c.unknown) },
    ], rows, { empty: 'No computer matches.' }),
  });
  main.append(...heading('Computers'), form, list.root);
  list.first();
}

export function renderOne(main, name) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading(name, [['#/computers', 'Computers']]), body);
  (async () => {
    let c;
    try {
      c = await get(`/clients/${seg(name)}`);
    } catch (e) { showError(body, e, 'load the computer'); return; }
    const slot = h('div', {});
    const actions = h('div', { class: 'actions' });
    if (can('manage clients')) {
      for (const [what, label] of [['approve', 'Approve'], ['revoke', 'Revoke']]) {
        if ((what === 'approve' && c.approval === 'approved') || (what === 'revoke' && c.approval === 'revoked')) continue;
        const b = h('button', { type: 'button', class: what === 'revoke' ? 'danger' : '' }, label);
        b.addEventListener('click', () => busy(b, slot, `${what} ${name}`, async () => {
          if (what === 'revoke' && !window.confirm(`Revoke ${name}? It will be refused from now on.`)) return;
          await post(`/clients/${seg(c.client_id)}/${what}`);
          announce(`${name}: ${what}d.`);
          location.reload();
        }));
        actions.append(b);
      }
    }
    const inv = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const deps = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const msgs = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const scan = c.last_scan_record;
    clear(body, actions, slot,
      h('div', { class: 'grid' },
        h('section', { class: 'panel', 'aria-labelledby': 'c-facts' }, h('h2', { id: 'c-facts' }, 'Computer'),
          facts([
            ['Client ID', h('code', {}, c.client_id)],
            ['Approval', badge(c.approval)],
            ['Operating system', `${c.os} ${c.os_release} (${c.architecture})`],
            ['Site', c.site],
            ['Enrolled', when(c.enrolled)],
            ['Last contact', when(c.last_contact)],
            ['Last policy', when(c.last_policy)],
            ['Last scan', when(c.last_scan)],
            scan ? ['Last scan result', scan.result || 'succeeded'] : null,
          ])),
        h('section', { class: 'panel', 'aria-labelledby': 'c-comp' }, h('h2', { id: 'c-comp' }, 'Compliance'),
          stackedBars({
            title: `Updates by state on ${name}`,
            desc: 'How many updates this computer requires, has installed, does not need, or has not reported.',
            rows: [{ label: name, parts: c }],
            keys: [{ key: 'required', label: 'Required' }, { key: 'installed', label: 'Installed' },
              { key: 'not_required', label: 'Not required' }, { key: 'unknown', label: 'Unknown' }],
          }))),
      h('section', { 'aria-labelledby': 'c-up' }, h('h2', { id: 'c-up' }, 'Required and installed updates'),
        table(`Updates required or installed on ${name}`, [
          { label: 'Update', value: (u) => link(`#/updates/${seg(u.update_id)}`, u.title) },
          { label: 'Classification', value: (u) => u.classification },
          { label: 'State', value: (u) => badge(u.state) },
          { label: 'Restart pending', value: (u) => (u.restart_pending ? 'yes' : 'no') },
          { label: 'Since', value: (u) => when(u.time) },
        ], c.updates, { empty: 'This computer has reported no required or installed update.' })),
      h('section', { 'aria-labelledby': 'c-dep' }, h('h2', { id: 'c-dep' }, 'Deployments'), deps),
      h('section', { 'aria-labelledby': 'c-inv' }, h('h2', { id: 'c-inv' }, 'Inventory'), inv),
      h('section', { 'aria-labelledby': 'c-msg' }, h('h2', { id: 'c-msg' }, 'Status messages'), msgs));

    report('deployments-for-computer', { computer: c.client_id }).then((r) => clear(deps, table(`Deployments targeting ${name}`, [
      { label: 'Deployment', value: (d) => link(`#/deployments/${seg(d.deployment_id)}`, d.deployment) },
      { label: 'State', value: (d) => badge(d.state) },
      { label: 'Detail', value: (d) => d.detail || '' },
      { label: 'Since', value: (d) => when(d.time) },
    ], r.rows, { empty: 'No deployment targets this computer.' }))).catch((e) => showError(deps, e, 'load the deployments'));

    report('inventory-for-computer', { computer: c.client_id }).then((r) => clear(inv,
      r.rows.length ? h('p', { class: 'hint' }, 'Sent ', when(r.rows[0].inventoried), '.') : null,
      table(`Inventory of ${name}`, [
        { label: 'Property', value: (p) => h('code', {}, p.property) },
        { label: 'Value', value: (p) => p.value },
      ], r.rows, { empty: 'This computer has not sent its inventory yet.' }))).catch((e) => showError(inv, e, 'load the inventory'));

    get(`/status-messages${qs({ system: name, limit: 50 })}`).then((rows) => clear(msgs, table(`Status messages of ${name}`, [
      { label: 'Time', value: (m) => when(m.time) },
      { label: 'Severity', value: (m) => severity(m.severity) },
      { label: 'ID', num: true, value: (m) => m.message_id },
      { label: 'Component', value: (m) => m.component },
      { label: 'Description', value: (m) => m.description },
    ], rows.reverse(), { empty: 'No status messages from this computer.' }),
    h('p', {}, link(`#/status?system=${seg(name)}`, 'All of its status messages')))).catch((e) => showError(msgs, e, 'load the status messages'));
  })();
}
