// Deployments: the list; a new deployment (an update group or updates, a collection, the
// available time, deadline and maintenance windows); one deployment with its progress as a
// chart, its computers paged, and disable, enable and re-run.

import { get, getPage, post, qs, seg, can } from '../api.js';
import {
  h, clear, heading, num, when, badge, table, field, select, checkbox, pager, routeParams, facts,
  showError, link, busy, announce, progress, every, errorBox,
} from '../ui.js';
import { progressBar } from '../charts.js';

/** Client states in the order a deployment moves through them, with their labels. */
const STATES = [
  ['succeeded', 'Succeeded'], ['installing', 'Installing'], ['downloading', 'Downloading'],
  ['received', 'Received'], ['waiting', 'Waiting'], ['waiting_for_window', 'Waiting for a window'],
  ['content_unavailable', 'Content unavailable'], ['restart_pending', 'Restart pending'],
  ['failed', 'Failed'], ['not_received', 'Not received yet'],
];

function progressOf(d) {
  const parts = STATES.map(([key, label]) => ({ key, label, value: Number(d.summary[key]) || 0 }));
  const known = new Set(STATES.map(([k]) => k));
  for (const [k, v] of Object.entries(d.summary)) {
    if (!known.has(k)) parts.push({ key: k, label: k.replaceAll('_', ' '), value: Number(v) || 0 });
  }
  return parts;
}

export function render(main) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading('Deployments'),
    h('div', { class: 'actions' }, can('deploy updates') ? h('a', { href: '#/deployments/new', class: 'button' }, 'New deployment…') : null),
    body);
  const load = async () => {
    try {
      const list = await get('/deployments');
      clear(body, table('Deployments', [
        { label: 'Deployment', value: (d) => link(`#/deployments/${seg(d.id)}`, d.name) },
        { label: 'Update group', value: (d) => d.update_group },
        { label: 'Collection', value: (d) => d.collection },
        { label: 'Enabled', value: (d) => (d.enabled ? 'yes' : badge('disabled', 'disabled')) },
        { label: 'Available', value: (d) => d.available },
        { label: 'Deadline', value: (d) => d.deadline || 'none' },
        {
          label: 'Succeeded', num: true, value: (d) => {
            const total = Object.values(d.summary).reduce((s, v) => s + v, 0);
            return `${num(d.summary.succeeded || 0)} of ${num(total)}`;
          },
        },
      ], list, { empty: 'No deployment yet.' }));
    } catch (e) { showError(body, e, 'load the deployments'); }
  };
  load();
  return every(15000, load);
}

function localInput(minutesFromNow) {
  const d = new Date(Date.now() + minutesFromNow * 60000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function utcInput(minutesFromNow) {
  return new Date(Date.now() + minutesFromNow * 60000).toISOString().slice(0, 16);
}

export function renderNew(main) {
  const p = routeParams();
  const preset = p.get('update');
  main.append(...heading('New deployment', [['#/deployments', 'Deployments']]));
  if (!can('deploy updates')) {
    main.append(h('p', {}, 'Your role may not deploy updates. A Full Administrator or Software Update Manager can.'));
    return null;
  }
  const name = h('input', { name: 'name', required: true, maxlength: '128' });
  const groupChoice = select('group_mode', [['new', 'A new update group of these updates'], ['existing', 'An existing update group']], 'new');
  const groupName = h('input', { name: 'group_name' });
  const updates = h('textarea', { name: 'updates', rows: '3' }, preset || '');
  const existing = select('update_group', [['', 'Loading…']], '');
  const collection = select('collection', [['', 'Loading…']], '');
  const utc = checkbox('Times are UTC (the same moment everywhere), not each computer\'s local time', 'utc', true);
  const available = h('input', { type: 'datetime-local', name: 'available', value: utcInput(0) });
  const deadline = h('input', { type: 'datetime-local', name: 'deadline', value: utcInput(7 * 24 * 60) });
  const noDeadline = checkbox('No deadline (available only)', 'no_deadline', false);
  const postpone = checkbox('Users may postpone until the deadline', 'allow_postpone', true);
  const notification = h('input', { name: 'notification', maxlength: '1024' });
  const priority = select('priority', [['high', 'High'], ['medium', 'Medium'], ['low', 'Low']], 'medium');
  const recurrence = h('input', { type: 'number', name: 'recurrence_days', min: '1', max: '365' });
  const suppressServers = checkbox('Suppress restarts on servers', 'suppress_restart_servers', false);
  const suppressWorkstations = checkbox('Suppress restarts on workstations', 'suppress_restart_workstations', false);
  const windows = h('div', {});
  const winName = h('input', { name: 'window_name' });
  const winSchedule = h('input', { name: 'window_schedule', placeholder: 'daily 22:00 3h utc' });
  const winSlot = h('div', {});
  const addWindow = h('button', { type: 'button' }, 'Add window');
  const slot = h('div', {});
  const prog = progress('Creating the deployment');
  prog.root.hidden = true;
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create deployment');

  const newGroupFields = h('div', { class: 'form-grid' },
    field('New update group name', groupName, 'Left empty: the deployment\'s name.'),
    field('Updates', updates, preset && p.get('title')
      ? `${p.get('title')}, by its update ID. Add more: update IDs, article IDs (source/version) or titles, one a line.`
      : 'Update IDs, article IDs (source/version) or titles, one a line.'));
  const existingFields = h('div', { class: 'form-grid' }, field('Update group', existing));
  existingFields.hidden = true;
  groupChoice.addEventListener('change', () => {
    newGroupFields.hidden = groupChoice.value !== 'new';
    existingFields.hidden = groupChoice.value === 'new';
  });
  const utcBox = utc.querySelector('input');
  utcBox.addEventListener('change', () => {
    available.value = utcBox.checked ? utcInput(0) : localInput(0);
    deadline.value = utcBox.checked ? utcInput(7 * 24 * 60) : localInput(7 * 24 * 60);
  });
  noDeadline.querySelector('input').addEventListener('change', (ev) => { deadline.disabled = ev.target.checked; });

  const form = h('form', { 'aria-labelledby': 'nd-title' },
    h('h2', { id: 'nd-title', class: 'visually-hidden' }, 'Deployment settings'),
    h('fieldset', {}, h('legend', {}, 'What'),
      h('div', { class: 'form-grid' }, field('Name', name, 'Shown to administrators, e.g. "November patches".'),
        field('Updates from', groupChoice)),
      newGroupFields, existingFields),
    h('fieldset', {}, h('legend', {}, 'To whom'),
      h('div', { class: 'form-grid' }, field('Collection', collection))),
    h('fieldset', {}, h('legend', {}, 'When'),
      utc,
      h('div', { class: 'form-grid' }, field('Available', available), field('Deadline', deadline)),
      noDeadline, postpone,
      h('div', { class: 'form-grid' }, field('Notification text', notification, 'What users see; may be empty.'),
        field('Content priority', priority),
        field('Run again every (days)', recurrence, 'Empty: once. A recurring deployment is evaluated again on this interval.')),
      suppressServers, suppressWorkstations),
    h('fieldset', {}, h('legend', {}, 'Maintenance windows of the collection'),
      h('p', { class: 'hint' }, 'Installs wait for a window of the target collection; with none, they run when due.'),
      windows,
      h('div', { class: 'form-grid' }, field('Window name', winName), field('Schedule', winSchedule,
        'daily 22:00 3h, weekly sat 22:00 4h, monthly 2 tue 22:00 3h, once 2026-12-01 22:00 2h; add "utc" for UTC.')),
      h('div', { class: 'actions' }, addWindow), winSlot),
    slot, prog.root,
    h('div', { class: 'actions' }, submit));
  main.append(form);

  async function showWindows() {
    if (!collection.value) { clear(windows); return; }
    try {
      const all = await get('/maintenance-windows');
      const chosen = collection.options[collection.selectedIndex]?.textContent;
      const mine = all.filter((w) => w.collection === chosen || w.collection === collection.value);
      clear(windows, table('Maintenance windows', [
        { label: 'Window', value: (w) => w.name },
        { label: 'Schedule', value: (w) => h('code', {}, w.schedule) },
      ], mine, { empty: 'This collection has no maintenance window.' }));
    } catch (e) { showError(windows, e, 'load the maintenance windows'); }
  }
  collection.addEventListener('change', showWindows);
  addWindow.addEventListener('click', () => busy(addWindow, winSlot, 'add the maintenance window', async () => {
    if (!collection.value) throw new Error('Choose a collection first.');
    await post(`/collections/${seg(collection.value)}/windows`, { name: winName.value.trim(), schedule: winSchedule.value.trim() });
    announce(`Maintenance window ${winName.value.trim()} added.`);
    winName.value = '';
    winSchedule.value = '';
    await showWindows();
  }));

  Promise.all([get('/update-groups'), get('/collections')]).then(([groups, cols]) => {
    clear(existing, groups.length ? groups.map((g) => h('option', { value: g.name }, `${g.name} (${g.updates.length} updates)`))
      : h('option', { value: '' }, 'No update group yet'));
    clear(collection, cols.map((c) => h('option', { value: c.id, selected: c.built_in }, `${c.name} (${num(c.members)} computers)`)));
    showWindows();
  }).catch((e) => showError(slot, e, 'load update groups and collections'));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(slot);
    const n = name.value.trim();
    if (!n) { name.setAttribute('aria-invalid', 'true'); clear(slot, errorBox(new Error('A deployment needs a name.'), 'create the deployment')); name.focus(); return; }
    name.removeAttribute('aria-invalid');
    submit.disabled = true;
    prog.root.hidden = false;
    try {
      let group = existing.value;
      if (groupChoice.value === 'new') {
        const list = updates.value.split('\n').map((s) => s.trim()).filter(Boolean);
        if (!list.length) throw Object.assign(new Error('Name at least one update.'), { action: 'Type an update ID, article ID or title, or pick an existing update group.' });
        group = groupName.value.trim() || n;
        prog.set(1, 3, `Creating update group ${group}…`);
        await post('/update-groups', { name: group, updates: list });
      }
      if (!group) throw Object.assign(new Error('Choose an update group.'), { action: 'Pick one, or make a new group of updates.' });
      prog.set(2, 3, `Creating deployment ${n} and its content package…`);
      const d = await post('/deployments', {
        name: n,
        update_group: group,
        collection: collection.value,
        available: available.value || undefined,
        deadline: deadline.disabled ? undefined : (deadline.value || undefined),
        utc: utcBox.checked,
        allow_postpone: postpone.querySelector('input').checked,
        notification: notification.value,
        priority: priority.value,
        recurrence_days: recurrence.value ? Number(recurrence.value) : undefined,
        suppress_restart_servers: suppressServers.querySelector('input').checked,
        suppress_restart_workstations: suppressWorkstations.querySelector('input').checked,
      });
      prog.set(3, 3, `Deployment ${d.name} created.`);
      announce(`Deployment ${d.name} created.`);
      location.hash = `#/deployments/${seg(d.id)}`;
    } catch (e) {
      prog.root.hidden = true;
      showError(slot, e, 'create the deployment');
    } finally {
      submit.disabled = false;
    }
  });
  name.focus();
  return null;
}

export function renderOne(main, key) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const chart = h('div', { id: 'deployment-progress' });
  const slot = h('div', {});
  const actions = h('div', { class: 'actions' });
  main.append(...heading('Deployment', [['#/deployments', 'Deployments']]), actions, slot,
    h('section', { 'aria-labelledby': 'd-prog' }, h('h2', { id: 'd-prog' }, 'Progress'), chart), body);
  const computers = pager({
    label: 'Computers',
    limit: 50,
    load: async (offset, limit, signal) => {
      const r = await getPage(`/deployments/${seg(key)}${qs({ limit, offset })}`, signal);
      return { rows: r.rows.clients, total: r.total };
    },
    render: (rows) => table('Computers targeted by the deployment', [
      { label: 'Computer', value: (c) => link(`#/computers/${seg(c.computer)}`, c.computer) },
      { label: 'State', value: (c) => badge(c.state) },
      { label: 'Detail', value: (c) => c.detail || '' },
      { label: 'Since', value: (c) => when(c.time) },
      { label: 'Last success', value: (c) => when(c.last_success) },
    ], rows, { empty: 'No computer has been targeted yet.' }),
  });
  let shown = false;
  let lastSummary = '';
  async function load() {
    let d;
    try {
      d = await get(`/deployments/${seg(key)}${qs({ limit: 0 })}`);
    } catch (e) { showError(body, e, 'load the deployment'); return; }
    main.querySelector('h1').textContent = `Deployment ${d.name}`;
    const parts = progressOf(d);
    const total = parts.reduce((s, x) => s + x.value, 0);
    const summary = JSON.stringify(d.summary);
    if (summary !== lastSummary) {
      lastSummary = summary;
      clear(chart, progressBar({
        title: `Progress of ${d.name}`,
        desc: `${num(d.summary.succeeded || 0)} of ${num(total)} computers succeeded.`,
        parts,
      }), h('p', { id: 'deployment-succeeded' }, `${num(d.summary.succeeded || 0)} of ${num(total)} computers succeeded`,
        d.summary.failed ? `, ${num(d.summary.failed)} failed` : '', '.'));
      if (shown) { computers.reload(); announce(`${d.name}: ${num(d.summary.succeeded || 0)} of ${num(total)} succeeded.`); }
    }
    clear(actions);
    if (can('deploy updates')) {
      const act = (label, path, done, cls) => {
        const b = h('button', { type: 'button', class: cls || '' }, label);
        b.addEventListener('click', () => busy(b, slot, `${label.toLowerCase()} the deployment`, async () => {
          await post(`/deployments/${seg(d.id)}/${path}`);
          announce(done);
          clear(slot, h('div', { class: 'ok-box', role: 'status' }, done));
          lastSummary = '';
          await load();
        }));
        return b;
      };
      actions.append(d.enabled ? act('Disable', 'disable', `${d.name} is disabled: computers install nothing from it.`, 'danger')
        : act('Enable', 'enable', `${d.name} is enabled again.`));
      actions.append(act('Re-run', 'rerun', `${d.name} runs again on every targeted computer.`));
    }
    if (!shown) {
      shown = true;
      clear(body,
        h('section', { class: 'panel', 'aria-labelledby': 'd-facts' }, h('h2', { id: 'd-facts' }, 'Settings'),
          facts([
            ['ID', h('code', {}, d.id)],
            ['Update group', d.update_group],
            ['Collection', d.collection],
            ['Enabled', d.enabled ? 'yes' : ['no', d.reenable_at ? [' (until ', when(d.reenable_at), ')'] : '']],
            ['Available', `${d.available}${d.utc ? ' UTC' : ' (client local time)'}`],
            ['Deadline', d.deadline || 'none'],
            ['Postpone', d.allow_postpone ? 'allowed until the deadline' : 'not allowed'],
            ['Recurrence', d.recurrence_days ? `every ${d.recurrence_days} days` : 'once'],
            ['Restarts', [d.suppress_restart_servers ? 'suppressed on servers' : 'allowed on servers',
              d.suppress_restart_workstations ? ', suppressed on workstations' : ', allowed on workstations']],
            ['Content package', d.package ? link(`#/content/packages/${seg(d.package)}`, d.package) : 'none'],
            ['Run', num(d.generation)],
            ['Created', [when(d.created), ` by ${d.created_by}`]],
          ])),
        h('section', { 'aria-labelledby': 'd-upd' }, h('h2', { id: 'd-upd' }, 'Updates'),
          table('Updates of the deployment', [
            { label: 'Update', value: (u) => link(`#/updates/${seg(u.id)}`, u.title) },
            { label: 'Removed', value: (u) => (u.removed ? when(u.removed) : 'no') },
          ], d.updates)),
        h('section', { 'aria-labelledby': 'd-comp' }, h('h2', { id: 'd-comp' }, 'Computers'), computers.root));
      computers.first();
    }
  }
  load();
  // Progress follows the site every 3 seconds while the page is open.
  return every(3000, load);
}
