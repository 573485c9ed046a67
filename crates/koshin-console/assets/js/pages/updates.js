// Software updates: the catalog with each update's counts (the updates-with-counts report,
// paged by the site), filters, and one update with the computers in each state.

import { get, report, seg, can } from '../api.js';
import { h, clear, heading, num, when, badge, table, field, select, checkbox, pager, routeParams, facts, showError, link } from '../ui.js';
import { stackedBars } from '../charts.js';

const PAGE = 50;

export function render(main) {
  const p = routeParams();
  const search = h('input', { type: 'search', name: 'search', value: p.get('search') || '', placeholder: 'title, package or article' });
  const product = select('product', [['', 'Any product']], p.get('product') || '');
  const classification = select('classification', [['', 'Any classification']], p.get('classification') || '');
  const required = checkbox('Only updates some computer requires', 'required', p.get('required') === '1');
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter updates' },
    field('Search', search), field('Product', product), field('Classification', classification),
    required, h('button', { type: 'submit', class: 'primary' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (search.value.trim()) q.set('search', search.value.trim());
    if (product.value) q.set('product', product.value);
    if (classification.value) q.set('classification', classification.value);
    if (required.querySelector('input').checked) q.set('required', '1');
    const s = q.toString();
    location.hash = `#/updates${s ? `?${s}` : ''}`;
  });
  // The filters' choices come from the catalog's counts.
  get('/site').then((site) => {
    const products = [...new Set(site.catalog.map((c) => c.product))].sort();
    const classes = [...new Set(site.catalog.map((c) => c.classification))].sort();
    for (const v of products) product.append(h('option', { value: v, selected: v === p.get('product') }, v));
    for (const v of classes) classification.append(h('option', { value: v, selected: v === p.get('classification') }, v));
  }).catch(() => {});

  const params = {
    search: p.get('search') || undefined,
    product: p.get('product') || undefined,
    classification: p.get('classification') || undefined,
    required_only: p.get('required') === '1' ? '1' : undefined,
  };
  const list = pager({
    label: 'Updates',
    limit: PAGE,
    load: async (offset, limit, signal) => {
      const r = await report('updates-with-counts', { ...params, limit, offset }, signal);
      return { rows: r.rows, total: r.total };
    },
    render: (rows) => table('Software updates', [
      { label: 'Title', value: (u) => link(`#/updates/${seg(u.id)}`, u.title) },
      { label: 'Product', value: (u) => u.product },
      { label: 'Classification', value: (u) => u.classification },
      { label: 'Required', num: true, value: (u) => (u.required ? h('strong', {}, num(u.required)) : '0') },
      { label: 'Installed', num: true, value: (u) => num(u.installed) },
      { label: 'Not required', num: true, value: (u) => num(u.not_required) },
      { label: 'Unknown', num: true, value: (u) => num(u.unknown) },
    ], rows, { empty: 'No update matches these filters.' }),
  });
  main.append(...heading('Software updates'),
    h('p', { class: 'hint' }, 'Every update of the catalog that has not expired, with how many computers require it. Pick one to see those computers or to deploy it.'),
    form, list.root);
  list.first();
}

const STATES = [
  ['required', 'Required'], ['installed', 'Installed'], ['unknown', 'Unknown'], ['not_required', 'Not required'],
];

export function renderOne(main, id) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(...heading('Software update', [['#/updates', 'Software updates']]), body);
  (async () => {
    let u;
    try {
      u = await get(`/updates/${seg(id)}?limit=0`);
    } catch (e) { showError(body, e, 'load the update'); return; }
    main.querySelector('h1').textContent = u.title;
    const counts = await report('updates-with-counts', { search: u.article_id, limit: 5 }).catch(() => null);
    const c = counts && counts.rows.find((r) => r.id === u.id);
    const p = routeParams();
    const state = p.get('state') || 'required';
    const stateSel = select('state', STATES, state);
    stateSel.addEventListener('change', () => {
      location.hash = `#/updates/${seg(id)}?state=${stateSel.value}`;
    });
    const computers = pager({
      label: 'Computers',
      limit: PAGE,
      load: async (offset, limit, signal) => {
        // The counters already say how many computers are in the state: the page is read
        // in name order and stops once full, instead of counting 150,000 rows again.
        const known = c ? c[state] : undefined;
        if (known === 0) return { rows: [], total: 0 };
        const r = await report('computers-in-state-for-update',
          { update: u.id, state, limit, offset, ...(known !== undefined ? { count: 0 } : {}) }, signal);
        return { rows: r.rows, total: known !== undefined ? known : r.total };
      },
      render: (rows) => table(`Computers whose state is ${state.replace('_', ' ')}`, [
        { label: 'Computer', value: (r) => link(`#/computers/${seg(r.computer)}`, r.computer) },
        { label: 'State', value: (r) => badge(r.state) },
        { label: 'Restart pending', value: (r) => (r.restart_pending ? 'yes' : 'no') },
        { label: 'Since', value: (r) => when(r.state_time) },
      ], rows, { empty: `No computer is ${state.replace('_', ' ')} for this update.` }),
    });
    clear(body,
      h('div', { class: 'actions' },
        can('deploy updates')
          ? h('a', { class: 'button', href: `#/deployments/new?update=${seg(u.id)}&title=${seg(u.title)}` }, 'Deploy this update…')
          : null),
      h('div', { class: 'grid' },
        h('section', { class: 'panel', 'aria-labelledby': 'u-facts' }, h('h2', { id: 'u-facts' }, 'Details'),
          facts([
            ['Update ID', h('code', {}, u.id)],
            ['Article', u.article_id],
            u.bulletin_id ? ['Bulletin', u.bulletin_id] : null,
            ['Product', u.product],
            ['Classification', u.classification],
            u.severity ? ['Severity', u.severity] : null,
            ['Released', when(u.released)],
            ['Revision', num(u.revision)],
            ['Superseded by', u.superseded_by ? link(`#/updates/${seg(u.superseded_by)}`, u.superseded_by) : 'not superseded'],
            ['Expired', u.expired ? 'yes' : 'no'],
          ]),
          u.description ? h('p', {}, u.description) : null),
        h('section', { class: 'panel', 'aria-labelledby': 'u-comp' }, h('h2', { id: 'u-comp' }, 'Compliance'),
          c ? stackedBars({
            title: `Computers by state for ${u.title}`,
            desc: 'How many computers require this update, have it installed, do not need it, or have not reported.',
            rows: [{ label: u.title, parts: c }],
            keys: STATES.map(([key, label]) => ({ key, label })),
          }) : h('p', { class: 'muted' }, 'No counts for this update.'))),
      h('section', { 'aria-labelledby': 'u-pk' }, h('h2', { id: 'u-pk' }, 'Packages'),
        table('Binary packages of the update', [
          { label: 'Package', value: (b) => b.name },
          { label: 'Architecture', value: (b) => b.architecture },
          { label: 'Version', value: (b) => b.version },
          { label: 'Size', num: true, value: (b) => num(b.size) },
        ], u.packages)),
      h('section', { 'aria-labelledby': 'u-comps' }, h('h2', { id: 'u-comps' }, 'Computers'),
        h('form', { class: 'filters', 'aria-label': 'Computers by state' }, field('State', stateSel)),
        computers.root));
    computers.first();
  })();
}
