// Distribution points and content: each point's status and what it holds, the content
// packages with how many of their targets hold them, and one package's transfers.

import { get, post, seg, can } from '../api.js';
import { h, clear, heading, num, when, badge, table, facts, showError, link, bytes, busy, announce, every, progress } from '../ui.js';

export function render(main) {
  const dps = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const packages = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const groups = h('div', {});
  const slot = h('div', {});
  main.append(...heading('Distribution points and content'), slot,
    h('section', { 'aria-labelledby': 'c-dps' }, h('h2', { id: 'c-dps' }, 'Distribution points'), dps),
    h('section', { 'aria-labelledby': 'c-groups' }, h('h2', { id: 'c-groups' }, 'Groups'), groups),
    h('section', { 'aria-labelledby': 'c-pk' }, h('h2', { id: 'c-pk' }, 'Content packages'), packages));
  async function load() {
    const [d, p, g] = await Promise.allSettled([get('/dps'), get('/content'), get('/dp-groups')]);
    if (d.status === 'fulfilled') {
      clear(dps, table('Distribution points', [
        { label: 'Distribution point', value: (x) => x.name },
        { label: 'Status', value: (x) => badge(x.status.toLowerCase(), x.status) },
        { label: 'Holds', num: true, value: (x) => num(x.installed) },
        { label: 'Pending', num: true, value: (x) => num(x.pending) },
        { label: 'Failed', num: true, value: (x) => num(x.failed) },
        { label: 'Last seen', value: (x) => (x.local ? 'this site' : when(x.last_seen)) },
        { label: 'Error', value: (x) => x.last_error || '' },
        {
          label: 'Validate', value: (x) => {
            if (!can('manage content')) return '';
            const b = h('button', { type: 'button', 'aria-label': `Validate ${x.name}` }, 'Validate');
            b.addEventListener('click', () => busy(b, slot, `validate ${x.name}`, async () => {
              b.textContent = 'Validating…';
              const v = await post(`/dps/${seg(x.name)}/validate`);
              const text = v.damaged.length
                ? `${x.name}: ${v.damaged.length} of ${v.checked} files damaged; they are sent again.`
                : `${x.name}: all ${v.checked} files are intact.`;
              clear(slot, h('div', { class: v.damaged.length ? 'error' : 'ok-box', role: 'status' }, text));
              announce(text);
            }));
            return b;
          },
        },
      ], d.value, { empty: 'No distribution point yet.' }));
    } else showError(dps, d.reason, 'load the distribution points');
    if (g.status === 'fulfilled') {
      clear(groups, table('Distribution point groups', [
        { label: 'Group', value: (x) => x.name },
        { label: 'Members', value: (x) => x.members.join(', ') },
      ], g.value, { empty: 'No group.' }));
    }
    if (p.status === 'fulfilled') {
      clear(packages, table('Content packages', [
        { label: 'Package', value: (x) => link(`#/content/packages/${seg(x.id)}`, x.name) },
        { label: 'ID', value: (x) => h('code', {}, x.id) },
        { label: 'Priority', value: (x) => x.priority },
        { label: 'Files', num: true, value: (x) => num(x.files) },
        { label: 'Size', num: true, value: (x) => bytes(x.bytes) },
        { label: 'Held by', num: true, value: (x) => `${num(x.installed)} of ${num(x.targeted)}` },
      ], p.value, { empty: 'No content package yet: a deployment makes one.' }));
    } else showError(packages, p.reason, 'load the content packages');
  }
  load();
  return every(10000, load);
}

export function renderPackage(main, key) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading('Content package', [['#/content', 'Distribution points and content']]), body);
  async function load() {
    let p;
    try { p = await get(`/content/${seg(key)}`); } catch (e) { showError(body, e, 'load the package'); return; }
    main.querySelector('h1').textContent = `Content package ${p.name}`;
    clear(body,
      h('section', { class: 'panel', 'aria-labelledby': 'p-facts' }, h('h2', { id: 'p-facts' }, 'Package'),
        facts([
          ['ID', h('code', {}, p.id)], ['Priority', p.priority], ['Files', num(p.files)], ['Size', bytes(p.bytes)],
          ['Held by', `${num(p.installed)} of ${num(p.targeted)} distribution points`],
          ['Created', [when(p.created), ` by ${p.created_by}`]],
        ])),
      h('section', { 'aria-labelledby': 'p-t' }, h('h2', { id: 'p-t' }, 'Distribution'),
        p.targets.length ? p.targets.map((t) => {
          const bar = progress(`${t.distribution_point}: transfer`);
          bar.set(t.bytes_sent, t.bytes_total || (t.state === 'installed' ? 1 : 0),
            `${t.distribution_point}: ${t.state}, ${bytes(t.bytes_sent)} of ${bytes(t.bytes_total)}${t.error ? ` — ${t.error}` : ''}`);
          if (t.state === 'installed' && !t.bytes_total) bar.set(1, 1, `${t.distribution_point}: installed`);
          return bar.root;
        }) : h('p', { class: 'empty' }, 'Not targeted at any distribution point.')),
      h('section', { 'aria-labelledby': 'p-f' }, h('h2', { id: 'p-f' }, 'Files'),
        table('Files of the package', [
          { label: 'File', value: (f) => f.name },
          { label: 'Size', num: true, value: (f) => bytes(f.size) },
          { label: 'In the library', value: (f) => (f.in_library ? 'yes' : 'not yet') },
          { label: 'SHA-256', value: (f) => h('code', {}, f.sha256.slice(0, 16)) },
        ], p.file_list)));
  }
  load();
  return every(5000, load);
}
