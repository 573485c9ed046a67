// Small building blocks every page uses: elements, tables with captions, a pager, forms
// with labels, errors that say what to do, progress that a screen reader hears.

/** An element: h('a', { href: '#/' }, 'Home'). Attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const e = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k in e && !svg && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(e, ...children) {
  e.replaceChildren();
  append(e, children);
  return e;
}

/** Says `text` to screen readers (polite), e.g. the progress of a long action. */
export function announce(text) {
  const live = document.getElementById('live');
  if (!live) return;
  live.textContent = '';
  // A new node each time, so the same words are read again.
  setTimeout(() => { live.textContent = text; }, 30);
}

const NUM = new Intl.NumberFormat();
export function num(n) {
  return n === null || n === undefined || n === '' ? '—' : NUM.format(Number(n));
}

export function pct(part, whole) {
  if (!whole) return '—';
  return `${(100 * part / whole).toFixed(1)} %`;
}

/** A time as the reader's local time, with "… ago" beside it. */
export function when(t) {
  if (!t) return h('span', { class: 'muted' }, 'never');
  const d = new Date(typeof t === 'number' ? t : Date.parse(t));
  if (Number.isNaN(d.getTime())) return String(t);
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, `${d.toLocaleString()} (${ago(d)})`);
}

export function ago(d) {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(s);
  const [n, unit] = abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min']
    : abs < 172800 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'days'];
  return s >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function badge(state, label) {
  const s = String(state ?? '');
  return h('span', { class: `badge ${s.replace(/[^A-Za-z_]/g, '_').toLowerCase()} ${s}` }, label ?? s.replaceAll('_', ' '));
}

export function link(href, text) {
  return h('a', { href }, text);
}

/**
 * A table: columns [{ label, value(row) -> node|text, num }], a caption (read by screen
 * readers, visually hidden unless `showCaption`).
 */
export function table(caption, columns, rows, { showCaption = false, empty = 'Nothing to show.' } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  const t = h('table', {},
    h('caption', { class: showCaption ? '' : 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c, i) => {
      const v = c.value(r);
      const cell = i === 0 && c.header !== false ? 'th' : 'td';
      return h(cell, cell === 'th' ? { scope: 'row', class: c.num ? 'num' : '' } : { class: c.num ? 'num' : '' }, v);
    })))));
  return h('div', { class: 'table-wrap' }, t);
}

/** A labelled form field. `control` is an input, select or textarea; its id is set here. */
let fieldSeq = 0;
export function field(label, control, help) {
  fieldSeq += 1;
  const id = control.id || `f${fieldSeq}`;
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (help) {
    const hid = `${id}-help`;
    control.setAttribute('aria-describedby', hid);
    parts.push(h('span', { class: 'help', id: hid }, help));
  }
  return h('div', { class: 'field' }, parts);
}

export function select(name, options, value) {
  return h('select', { name },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: v === value }, text);
    }));
}

export function checkbox(label, name, checked) {
  fieldSeq += 1;
  const id = `c${fieldSeq}`;
  return h('div', { class: 'check' },
    h('input', { type: 'checkbox', id, name, checked: !!checked }),
    h('label', { for: id }, label));
}

/** An error box: what went wrong (the site's words) and what to do. */
export function errorBox(err, doing) {
  const action = err && err.action ? err.action : 'Try again; if it persists, the site\'s log says why.';
  const message = err && err.message ? err.message : String(err);
  return h('div', { class: 'error', role: 'alert' },
    h('strong', {}, doing ? `Could not ${doing}: ` : 'Error: '), message,
    h('div', {}, action));
}

/** Shows an error in `slot` (replacing what was there) and announces it. */
export function showError(slot, err, doing) {
  if (err && err.name === 'AbortError') return;
  clear(slot, errorBox(err, doing));
}

/**
 * Runs `action` from a button: the button is disabled while it runs, its outcome is
 * announced, and an error lands in `slot`. Returns the action's value (undefined on error).
 */
export async function busy(button, slot, doing, action) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (slot) clear(slot);
  try {
    const v = await action();
    return v;
  } catch (e) {
    if (slot) showError(slot, e, doing);
    announce(`Could not ${doing}: ${e.message}`);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

/** A progress bar with a text line; `set(done, total, text)`; total 0 = indeterminate. */
export function progress(label) {
  const fill = h('div', { class: 'fill indeterminate' });
  const bar = h('div', {
    class: 'bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': '100',
  }, fill);
  const line = h('div', { class: 'hint', 'aria-live': 'polite' });
  const root = h('div', { class: 'progress' }, bar, line);
  return {
    root,
    set(done, total, text) {
      if (total > 0) {
        const p = Math.max(0, Math.min(100, Math.round((100 * done) / total)));
        fill.classList.remove('indeterminate');
        fill.style.width = `${p}%`;
        bar.setAttribute('aria-valuenow', String(p));
        bar.setAttribute('aria-valuetext', text || `${p} %`);
      } else {
        fill.classList.add('indeterminate');
        fill.style.width = '';
        bar.removeAttribute('aria-valuenow');
        if (text) bar.setAttribute('aria-valuetext', text);
      }
      if (text !== undefined && line.textContent !== text) line.textContent = text;
    },
  };
}

/**
 * A pager for a list the site pages: `load(offset, limit)` resolves to { rows, total }
 * (total may be null: then "Next" is offered while a page comes back full).
 */
export function pager({ limit = 50, load, render, label }) {
  const body = h('div', {});
  const status = h('span', { class: 'muted', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button' }, 'Previous');
  const next = h('button', { type: 'button' }, 'Next');
  const nav = h('nav', { class: 'pager', 'aria-label': `${label} pages` }, prev, status, next);
  const root = h('div', {}, body, nav);
  let offset = 0;
  let ctrl = null;
  async function go(to) {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    status.textContent = 'Loading…';
    prev.disabled = true;
    next.disabled = true;
    try {
      const { rows, total } = await load(to, limit, signal);
      if (signal.aborted) return;
      offset = to;
      clear(body, render(rows));
      const last = offset + rows.length;
      status.textContent = rows.length === 0
        ? (total ? `None here (${num(total)} in all)` : 'None')
        : `${num(offset + 1)}–${num(last)}${total !== null && total !== undefined ? ` of ${num(total)}` : ''}`;
      prev.disabled = offset === 0;
      next.disabled = total !== null && total !== undefined ? last >= total : rows.length < limit;
      nav.hidden = offset === 0 && next.disabled;
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      showError(body, e, `load the ${label.toLowerCase()}`);
      status.textContent = '';
    }
  }
  prev.addEventListener('click', () => go(Math.max(0, offset - limit)));
  next.addEventListener('click', () => go(offset + limit));
  return { root, reload: () => go(offset), first: () => go(0) };
}

/** The current route's query parameters (`#/updates?product=…`). */
export function routeParams() {
  const hash = location.hash || '#/';
  const q = hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
}

/** A page heading with breadcrumbs: the heading takes focus after navigation. */
export function heading(title, crumbs = []) {
  const parts = [];
  if (crumbs.length) {
    parts.push(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      crumbs.map(([href, text], i) => [i ? ' / ' : '', h('a', { href }, text)])));
  }
  parts.push(h('h1', { tabindex: '-1' }, title));
  return parts;
}

/** Facts as a description list: [[term, value], …]. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A CSV text of rows (objects) in column order: quoted where needed, CRLF line ends. */
export function csv(columns, rows) {
  const cell = (v) => {
    if (v === null || v === undefined) return '';
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map(cell).join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n';
}

/** Offers `text` as a download named `name`. */
export function download(name, text, type = 'text/csv') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

/** A repeating task that stops when the page is left; returns the stop function. */
export function every(ms, task) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    if (stopped) return;
    try { await task(); } catch { /* each task shows its own errors */ }
    if (!stopped) timer = setTimeout(run, ms);
  };
  timer = setTimeout(run, ms);
  return () => { stopped = true; clearTimeout(timer); };
}

/** A status message's severity in words. */
export function severity(s) {
  return badge(s, { I: 'Informational', W: 'Warning', E: 'Error' }[s] || s);
}
