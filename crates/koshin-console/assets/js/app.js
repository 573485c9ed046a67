// The console's shell: the login form, the navigation, and the router that shows one page
// per URL fragment (#/updates, #/deployments/NAME, …). A page is a module whose
// `render(main, params)` fills <main> and may return a function that stops its timers.

import { get, post, session, setSession, whenUnauthorized, ApiError } from './api.js';
import { h, clear, field, errorBox, announce } from './ui.js';
import * as dashboard from './pages/dashboard.js';
import * as updates from './pages/updates.js';
import * as computers from './pages/computers.js';
import * as sync from './pages/sync.js';
import * as deployments from './pages/deployments.js';
import * as collections from './pages/collections.js';
import * as content from './pages/content.js';
import * as reports from './pages/reports.js';
import * as status from './pages/status.js';
import * as hierarchy from './pages/hierarchy.js';

/** Navigation entries and the routes they own. */
const NAV = [
  ['#/', 'Dashboard', dashboard.render],
  ['#/updates', 'Software updates', updates.render],
  ['#/computers', 'Computers', computers.render],
  ['#/sync', 'Synchronization', sync.render],
  ['#/deployments', 'Deployments', deployments.render],
  ['#/collections', 'Collections', collections.render],
  ['#/content', 'Distribution points', content.render],
  ['#/reports', 'Reports', reports.render],
  ['#/status', 'Status messages', status.render],
  ['#/hierarchy', 'Hierarchy', hierarchy.render],
];

/** Detail routes: a pattern over the fragment's path, and the page. */
const ROUTES = [
  [/^\/updates\/(.+)$/, updates.renderOne],
  [/^\/computers\/(.+)$/, computers.renderOne],
  [/^\/deployments\/new$/, deployments.renderNew],
  [/^\/deployments\/(.+)$/, deployments.renderOne],
  [/^\/collections\/(.+)$/, collections.renderOne],
  [/^\/content\/packages\/(.+)$/, content.renderPackage],
  [/^\/reports\/(.+)$/, reports.renderOne],
];

const app = document.getElementById('app');
let stopPage = null;
let mainEl = null;
let navLinks = [];

function path() {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) return null;
  const q = hash.indexOf('?');
  return q < 0 ? hash.slice(1) : hash.slice(1, q);
}

function loginView(reason) {
  if (stopPage) { stopPage(); stopPage = null; }
  const name = h('input', { name: 'name', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const slot = h('div', {});
  const button = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', tabindex: '-1' }, 'koshin'),
    h('p', { class: 'muted' }, 'Log in with your administrator account.'),
    reason ? h('div', { class: 'error', role: 'alert' }, reason) : null,
    field('Name', name),
    field('Password', password),
    slot,
    button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    button.textContent = 'Logging in…';
    clear(slot);
    try {
      const t = await post('/login', { name: name.value.trim(), password: password.value });
      const s = { token: t.token, name: t.name, role: t.role, permissions: t.permissions || [], expires: t.expires };
      setSession(s);
      const site = await get('/site');
      setSession({ ...s, site: site.site, version: site.version });
      password.value = '';
      announce(`Logged in as ${t.name}, ${t.role}.`);
      shell();
    } catch (e) {
      setSession(null);
      const err = e instanceof ApiError && e.status === 401
        ? new ApiError(401, e.message, 'Check the name and password. An administrator is created with koshin admins add.')
        : e;
      clear(slot, errorBox(err, 'log in'));
      password.focus();
    } finally {
      button.disabled = false;
      button.textContent = 'Log in';
    }
  });
  clear(app, h('main', { id: 'main' }, form));
  mainEl = null;
  document.title = 'Log in — koshin';
  name.focus();
}

function shell() {
  const s = session();
  if (!s) { loginView(); return; }
  navLinks = NAV.map(([href, text]) => h('a', { href }, text));
  const logout = h('button', { type: 'button' }, 'Log out');
  logout.addEventListener('click', async () => {
    try { await post('/logout'); } catch { /* the token is dropped here either way */ }
    setSession(null);
    location.hash = '#/';
    loginView('You have logged out.');
  });
  mainEl = h('main', { id: 'main', tabindex: '-1' });
  clear(app,
    h('header', { class: 'topbar' },
      h('span', { class: 'brand' }, 'koshin'),
      h('span', { class: 'site' }, `Site ${s.site || ''}`),
      h('span', { class: 'spacer' }),
      h('span', {}, `${s.name} · ${s.role}`),
      logout),
    h('div', { class: 'layout' },
      h('nav', { class: 'side', 'aria-label': 'Main' }, h('ul', {}, navLinks.map((a) => h('li', {}, a)))),
      mainEl));
  route(false);
}

function route(focus = true) {
  if (!session()) { loginView(); return; }
  if (!mainEl) { shell(); return; }
  const p = path();
  if (p === null) return; // an in-page anchor, not a route
  if (stopPage) { stopPage(); stopPage = null; }
  let page = null;
  let params = [];
  for (const [re, f] of ROUTES) {
    const m = p.match(re);
    if (m) { page = f; params = m.slice(1).map(decodeURIComponent); break; }
  }
  let current = null;
  if (!page) {
    const entry = NAV.find(([href]) => href.slice(1) === p) || (p === '' ? NAV[0] : null);
    if (entry) { page = entry[2]; current = entry[0]; }
  } else {
    current = NAV.map(([href]) => href).filter((href) => href !== '#/' && p.startsWith(href.slice(1)))[0];
  }
  for (const a of navLinks) {
    if (a.getAttribute('href') === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(mainEl);
  if (!page) {
    mainEl.append(h('h1', { tabindex: '-1' }, 'Not found'),
      h('p', {}, 'The console has no page here. ', h('a', { href: '#/' }, 'Go to the dashboard.')));
  } else {
    try {
      stopPage = page(mainEl, ...params) || null;
    } catch (e) {
      mainEl.append(errorBox(e, 'show this page'));
    }
  }
  const h1 = mainEl.querySelector('h1');
  document.title = `${h1 ? h1.textContent : 'koshin'} — koshin ${session()?.site || ''}`;
  if (focus && h1) h1.focus();
}

whenUnauthorized(() => {
  setSession(null);
  loginView('Your session has ended: log in again.');
});

document.getElementById('skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  const m = document.getElementById('main');
  if (m) { m.setAttribute('tabindex', '-1'); m.focus(); }
});

// A fault of the console itself is shown, not swallowed: the page says so and what to do.
function fault(reason) {
  if (reason && reason.name === 'AbortError') return;
  const where = mainEl || app;
  where.append(errorBox({
    message: String((reason && reason.message) || reason),
    action: 'Reload the page; if it persists, tell your site\'s administrators what you did.',
  }, 'show this page'));
}
window.addEventListener('error', (ev) => fault(ev.error || ev.message));
window.addEventListener('unhandledrejection', (ev) => fault(ev.reason));

window.addEventListener('hashchange', () => route(true));
shell();
