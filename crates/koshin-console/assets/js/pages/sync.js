// Synchronization: where it stands (content version, schedule, a request waiting), the
// history of runs, the sync manager's status messages, and "Synchronize now" with its
// progress followed until the run ends.

import { get, post, qs, can } from '../api.js';
import { h, severity, clear, heading, num, when, badge, table, facts, showError, progress, announce, busy, every } from '../ui.js';

const COMPONENT = 'SMS_WSUS_SYNC_MANAGER';

export function render(main) {
  const state = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const runs = h('div', {});
  const msgs = h('div', {});
  const slot = h('div', {});
  const prog = progress('Synchronization progress');
  prog.root.hidden = true;
  const now = h('button', { type: 'button', class: 'primary' }, 'Synchronize now');
  const full = h('button', { type: 'button' }, 'Full synchronization');
  const allowed = can('sync');
  now.disabled = !allowed;
  full.disabled = !allowed;
  main.append(...heading('Synchronization'),
    h('p', { class: 'hint' }, allowed
      ? 'Synchronize now fetches what changed upstream (a delta); a full synchronization also revises and expires updates.'
      : 'Your role may read the synchronization but not start one.'),
    h('div', { class: 'actions' }, now, full), slot, prog.root,
    h('div', { class: 'grid' },
      h('section', { class: 'panel', 'aria-labelledby': 's-state' }, h('h2', { id: 's-state' }, 'Update source'), state)),
    h('section', { 'aria-labelledby': 's-runs' }, h('h2', { id: 's-runs' }, 'History'), runs),
    h('section', { 'aria-labelledby': 's-msgs' }, h('h2', { id: 's-msgs' }, 'Sync manager status messages'), msgs));

  // The run this page asked for: followed until it ends.
  let waitingAfter = null;
  let following = false;

  async function load() {
    let s;
    try {
      s = await get('/sync');
    } catch (e) { showError(state, e, 'load the synchronization'); return; }
    clear(state, facts([
      ['Site', s.site],
      ['Content version', h('strong', { id: 'content-version' }, num(s.content_version))],
      ['Update source', h('code', {}, s.update_source_id)],
      ['Waiting request', s.pending_request || 'none'],
      ['Next scheduled', when(s.next_scheduled)],
      s.next_retry ? ['Next retry', when(s.next_retry)] : null,
    ]));
    clear(runs, table('Synchronization runs', [
      { label: 'Run', num: true, value: (r) => r.id },
      { label: 'Started', value: (r) => when(r.started) },
      { label: 'Kind', value: (r) => r.kind },
      { label: 'Trigger', value: (r) => r.trigger },
      { label: 'Result', value: (r) => badge(r.state) },
      { label: 'Changed', num: true, value: (r) => num(r.items) },
      { label: 'Content version', num: true, value: (r) => num(r.content_version) },
      { label: 'Error', value: (r) => r.error || '' },
    ], s.runs, { empty: 'The site has not synchronized yet.' }));
    const running = s.runs.find((r) => r.state === 'running');
    const mine = waitingAfter !== null ? s.runs.find((r) => r.id > waitingAfter) : null;
    if (running) {
      prog.root.hidden = false;
      const phase = running.phase ? `${running.phase}: ` : '';
      const counts = running.progress_total ? `${num(running.progress_done)} of ${num(running.progress_total)}` : 'starting';
      prog.set(running.progress_done, running.progress_total, `Synchronizing (${running.kind}) — ${phase}${counts}`);
    } else if (waitingAfter !== null && !mine) {
      prog.root.hidden = false;
      prog.set(0, 0, s.pending_request ? 'Requested; the sync manager starts it in a moment…' : 'Waiting for the sync manager…');
    } else {
      prog.root.hidden = true;
    }
    if (mine && mine.state !== 'running') {
      waitingAfter = null;
      const text = mine.state === 'succeeded'
        ? `Synchronization succeeded: ${num(mine.items)} updates changed; content version ${num(mine.content_version ?? s.content_version)}.`
        : `Synchronization failed: ${mine.error || 'see the status messages'}. The sync manager retries on its own; fix the cause named here and synchronize again.`;
      clear(slot, h('div', { class: mine.state === 'succeeded' ? 'ok-box' : 'error', role: 'status', id: 'sync-result' }, text));
      announce(text);
    }
    following = !!running || waitingAfter !== null;
    try {
      const m = await get(`/status-messages${qs({ component: COMPONENT, limit: 20 })}`);
      clear(msgs, table('Sync manager status messages', [
        { label: 'Time', value: (x) => when(x.time) },
        { label: 'Severity', value: (x) => severity(x.severity) },
        { label: 'ID', num: true, value: (x) => x.message_id },
        { label: 'Description', value: (x) => x.description },
      ], m.reverse(), { empty: 'No messages from the sync manager yet.' }));
    } catch (e) { showError(msgs, e, 'load the status messages'); }
  }

  for (const [b, isFull] of [[now, false], [full, true]]) {
    b.addEventListener('click', () => busy(b, slot, 'start the synchronization', async () => {
      const r = await post('/sync', { full: isFull });
      waitingAfter = r.after_run ?? 0;
      announce(`${isFull ? 'Full' : 'Delta'} synchronization requested.`);
      await load();
    }));
  }

  load();
  // Every second while a run is followed, every 15 seconds otherwise.
  let tick = 0;
  return every(1000, async () => {
    tick += 1;
    if (following || tick % 15 === 0) await load();
  });
}
