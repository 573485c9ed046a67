// The hierarchy: this site, its parent and children with each link's state and how far
// each has replicated the catalog, the update points, and a link to each site's console.

import { get } from '../api.js';
import { h, clear, heading, num, when, badge, table, facts, showError, every } from '../ui.js';

export function render(main) {
  const me = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const links = h('div', {});
  const sups = h('div', {});
  main.append(...heading('Hierarchy'),
    h('section', { class: 'panel', 'aria-labelledby': 'h-me' }, h('h2', { id: 'h-me' }, 'This site'), me),
    h('section', { 'aria-labelledby': 'h-links' }, h('h2', { id: 'h-links' }, 'Parent and child sites'), links),
    h('section', { 'aria-labelledby': 'h-sups' }, h('h2', { id: 'h-sups' }, 'Update points'), sups));
  async function load() {
    const [site, l, s] = await Promise.allSettled([get('/site'), get('/sites/links'), get('/sups')]);
    const cv = site.status === 'fulfilled' ? site.value.content_version : null;
    if (site.status === 'fulfilled') {
      clear(me, facts([['Site', site.value.site], ['Version', site.value.version], ['Content version', num(cv)]]));
    } else showError(me, site.reason, 'load the site');
    if (l.status === 'fulfilled') {
      clear(links, table('Linked sites', [
        { label: 'Site', value: (x) => x.code },
        { label: 'Relation', value: (x) => x.relation },
        { label: 'Kind', value: (x) => x.kind },
        { label: 'Link', value: (x) => badge(x.down ? 'down' : 'up', x.down ? 'down' : 'up') },
        {
          label: 'Sync state', value: (x) => {
            if (x.relation !== 'child') return `this site replicates ${num(x.replicated_content_version)}`;
            if (cv === null) return num(x.replicated_content_version);
            return x.replicated_content_version >= cv
              ? badge('ok', `in sync (${num(x.replicated_content_version)})`)
              : badge('pending', `${num(x.replicated_content_version)} of ${num(cv)}${x.notify_pending ? ', notification pending' : ''}`);
          },
        },
        { label: 'Last seen', value: (x) => when(x.last_seen) },
        { label: 'Waiting to go up', num: true, value: (x) => num(x.queued_up) },
        { label: 'Last error', value: (x) => x.last_error || '' },
        { label: 'Console', value: (x) => (x.url ? h('a', { href: `${x.url.replace(/\/+$/, '')}/console/`, rel: 'noopener' }, `Open ${x.code}`) : '') },
      ], l.value, { empty: 'This site has no parent and no child sites. A child joins with a join token (koshin site join-token).' }));
    } else showError(links, l.reason, 'load the links');
    if (s.status === 'fulfilled') {
      clear(sups, table('Update points', [
        { label: 'Update point', value: (x) => x.name },
        { label: 'Role', value: (x) => x.role },
        { label: 'Content version', num: true, value: (x) => num(x.content_version) },
        { label: 'Last sync', value: (x) => when(x.last_sync) },
        { label: 'Last error', value: (x) => x.last_error || '' },
      ], s.value, { empty: 'This site is its own update point; no replica or internet-facing point is registered.' }));
    } else showError(sups, s.reason, 'load the update points');
  }
  load();
  return every(15000, load);
}
