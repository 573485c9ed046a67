// Collections: the list, and one collection with its members (paged), its rules in an
// editor with a preview, every saved version and a rollback to any of them.

import { get, getPage, post, qs, seg, can } from '../api.js';
import { h, clear, heading, num, when, table, field, pager, facts, showError, link, busy, announce, select } from '../ui.js';

export function render(main) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const slot = h('div', {});
  const create = h('form', { class: 'filters', 'aria-label': 'New collection' });
  if (can('manage collections')) {
    const name = h('input', { name: 'name', required: true });
    const b = h('button', { type: 'submit', class: 'primary' }, 'Create collection');
    create.append(field('New collection', name), b);
    create.addEventListener('submit', (ev) => {
      ev.preventDefault();
      busy(b, slot, 'create the collection', async () => {
        const c = await post('/collections', { name: name.value.trim() });
        announce(`Collection ${c.name} created.`);
        location.hash = `#/collections/${seg(c.id)}`;
      });
    });
  }
  main.append(...heading('Collections'), create, slot, body);
  get('/collections').then((list) => clear(body, table('Collections', [
    { label: 'Collection', value: (c) => link(`#/collections/${seg(c.id)}`, c.name) },
    { label: 'ID', value: (c) => h('code', {}, c.id) },
    { label: 'Members', num: true, value: (c) => num(c.members) },
    { label: 'Query', value: (c) => (c.rules.query ? h('code', {}, c.rules.query) : '') },
    { label: 'Version', num: true, value: (c) => c.version },
    { label: 'Evaluated', value: (c) => when(c.evaluated) },
  ], list))).catch((e) => showError(body, e, 'load the collections'));
}

export function renderOne(main, key) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading('Collection', [['#/collections', 'Collections']]), body);
  (async () => {
    let c;
    let all;
    try {
      [c, all] = await Promise.all([get(`/collections/${seg(key)}${qs({ limit: 0 })}`), get('/collections')]);
    } catch (e) { showError(body, e, 'load the collection'); return; }
    main.querySelector('h1').textContent = `Collection ${c.name}`;
    const others = all.filter((o) => o.id !== c.id);
    const nameOf = (id) => (all.find((o) => o.id === id) || { name: id }).name;
    const editable = can('manage collections') && !c.built_in && !c.origin;

    const members = pager({
      label: 'Members',
      limit: 50,
      load: async (offset, limit, signal) => {
        const r = await getPage(`/collections/${seg(c.id)}${qs({ limit, offset })}`, signal);
        return { rows: r.rows.member_list, total: r.total };
      },
      render: (rows) => table(`Members of ${c.name}`, [
        { label: 'Computer', value: (m) => link(`#/computers/${seg(m.name)}`, m.name) },
        { label: 'How', value: (m) => m.via },
        { label: 'Since', value: (m) => when(m.added) },
      ], rows, { empty: 'This collection has no members.' }),
    });

    // The rules editor.
    const query = h('textarea', { name: 'query', rows: '4', spellcheck: 'false', readOnly: !editable }, c.rules.query || '');
    const limiting = select('limiting', [['', 'All Systems'], ...others.map((o) => [o.id, o.name])], c.rules.limiting || '');
    limiting.disabled = !editable;
    const includes = h('input', { name: 'includes', value: c.rules.includes.map(nameOf).join(', '), readOnly: !editable });
    const excludes = h('input', { name: 'excludes', value: c.rules.excludes.map(nameOf).join(', '), readOnly: !editable });
    const note = h('input', { name: 'note', maxlength: '512' });
    const slot = h('div', {});
    const preview = h('div', { 'aria-live': 'polite' });
    const previewB = h('button', { type: 'button' }, 'Preview query');
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save as a new version');
    const history = h('div', {});
    const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
    previewB.addEventListener('click', () => busy(previewB, slot, 'preview the query', async () => {
      clear(preview, h('p', { class: 'muted' }, 'Matching…'));
      const r = await post('/collections/preview', { query: query.value });
      clear(preview, h('p', {}, `The query matches ${num(r.clients.length)} computers now`, r.clients.length > 20 ? ' (the first 20 below)' : '', '.'),
        table('Computers the query matches', [
          { label: 'Computer', value: (x) => link(`#/computers/${seg(x.computer)}`, x.computer) },
          { label: 'Client ID', value: (x) => h('code', {}, x.client_id) },
        ], r.clients.slice(0, 20)));
      announce(`The query matches ${r.clients.length} computers.`);
    }));
    const legend = h('legend', { id: 'c-rules' }, `Rules (version ${c.version})`);
    const memberCount = h('span', {}, num(c.members));
    // After a save or a rollback: the version and members shown follow.
    const saved = (r) => {
      legend.textContent = `Rules (version ${r.version})`;
      memberCount.textContent = num(r.members);
      clear(preview);
    };
    const form = h('form', { 'aria-labelledby': 'c-rules' },
      h('fieldset', {}, legend,
        field('Query', query, 'For example: os.release = "12" and required("hello 2.10-4"). Empty: no query.'),
        h('div', { class: 'form-grid' },
          field('Limiting collection', limiting),
          field('Include collections', includes, 'Names or IDs, separated by commas.'),
          field('Exclude collections', excludes, 'Names or IDs, separated by commas.'),
          editable ? field('Note for this version', note) : null),
        h('div', { class: 'actions' }, previewB, editable ? save : null),
        editable ? null : h('p', { class: 'hint' }, c.built_in ? 'The built-in collection has no rules to change.'
          : c.origin ? `Replicated from site ${c.origin}: change it there.` : 'Your role may not change collections.'),
        slot, preview));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      busy(save, slot, 'save the rules', async () => {
        const q = query.value.trim();
        const r = await post(`/collections/${seg(c.id)}/rules`, {
          query: q || undefined,
          no_query: !q,
          limiting: limiting.value || 'SMS00001',
          includes: list(includes.value),
          excludes: list(excludes.value),
          note: note.value.trim(),
        });
        saved(r);
        announce(`Saved as version ${r.version}: ${r.members} members.`);
        clear(slot, h('div', { class: 'ok-box', role: 'status' }, `Saved as version ${r.version}; the collection has ${num(r.members)} members now.`));
        note.value = '';
        await loadHistory();
        members.first();
      });
    });

    async function loadHistory() {
      try {
        const versions = await get(`/collections/${seg(c.id)}/history`);
        clear(history, table(`Versions of the rules of ${c.name}`, [
          { label: 'Version', num: true, value: (v) => v.version },
          { label: 'Saved', value: (v) => [when(v.saved), ` by ${v.saved_by}`] },
          { label: 'Query', value: (v) => (v.query ? h('code', {}, v.query) : h('span', { class: 'muted' }, 'none')) },
          { label: 'Note', value: (v) => v.note },
          {
            label: 'Action', value: (v) => {
              if (v.current) return 'current';
              if (!editable) return '';
              const b = h('button', { type: 'button', 'aria-label': `Roll back to version ${v.version}` }, 'Roll back');
              b.addEventListener('click', () => busy(b, slot, `roll back to version ${v.version}`, async () => {
                const r = await post(`/collections/${seg(c.id)}/rollback`, { version: v.version });
                query.value = r.rules.query || '';
                saved(r);
                announce(`Rolled back: version ${r.version} has the rules of version ${v.version}.`);
                clear(slot, h('div', { class: 'ok-box', role: 'status' }, `Version ${r.version} now has the rules of version ${v.version}.`));
                await loadHistory();
                members.first();
              }));
              return b;
            },
          },
        ], [...versions].reverse()));
      } catch (e) { showError(history, e, 'load the history'); }
    }

    clear(body,
      h('section', { class: 'panel', 'aria-labelledby': 'c-facts' }, h('h2', { id: 'c-facts' }, 'Collection'),
        facts([
          ['ID', h('code', {}, c.id)],
          ['Members', memberCount],
          c.comment ? ['Comment', c.comment] : null,
          ['Evaluated', when(c.evaluated)],
          ['Created', [when(c.created), ` by ${c.created_by}`]],
          c.origin ? ['Replicated from', c.origin] : null,
        ])),
      form,
      h('section', { 'aria-labelledby': 'c-hist' }, h('h2', { id: 'c-hist' }, 'History'), history),
      h('section', { 'aria-labelledby': 'c-mem' }, h('h2', { id: 'c-mem' }, 'Members'), members.root));
    loadHistory();
    members.first();
  })();
}
