// The site's HTTP API, with the administrator's token. Every datum of the console comes
// through here, so the API's roles and scopes decide what a person sees and may do.

const SESSION = 'koshin.console.session';

/** The logged-in administrator: { token, name, role, permissions, expires, site }. */
export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
    if (s && s.expires && Date.parse(s.expires) <= Date.now()) {
      sessionStorage.removeItem(SESSION);
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

export function setSession(s) {
  if (s) sessionStorage.setItem(SESSION, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION);
}

/** Whether the logged-in role grants a permission ("sync", "deploy updates", …). */
export function can(permission) {
  const s = session();
  return !!s && Array.isArray(s.permissions) && s.permissions.includes(permission);
}

/** An answer that is not a success: the site's one-line reason and what to do about it. */
export class ApiError extends Error {
  constructor(status, message, action) {
    super(message);
    this.status = status;
    this.action = action;
  }
}

function whatToDo(status) {
  switch (status) {
    case 0: return 'Check that the site is running and that this computer reaches it, then try again.';
    case 400: return 'Correct the value named above and try again.';
    case 401: return 'Your session has ended or its token was revoked: log in again.';
    case 403: return 'Your role or scope does not allow this. A Full Administrator can change them (koshin admins).';
    case 404: return 'It may have been deleted or renamed: go back to the list and pick it again.';
    case 409: return 'Someone else changed it meanwhile: reload the page and try again.';
    case 413: return 'The request is too large for the site.';
    default:
      return status >= 500
        ? 'The site failed to answer: its log and the status messages say why. Try again in a moment.'
        : 'Try again; if it persists, the site\'s log says why.';
  }
}

/** Called when the site says the token is no longer valid. */
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

async function request(method, path, body, signal) {
  const headers = { Accept: 'application/json' };
  const s = session();
  if (s && s.token) headers.Authorization = `Bearer ${s.token}`;
  const init = { method, headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'The site did not answer.', whatToDo(0));
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!r.ok) {
    const reason = (data && typeof data === 'object' && data.error) || `${r.status} ${r.statusText}`;
    if (r.status === 401 && path !== '/login') onUnauthorized();
    throw new ApiError(r.status, reason, whatToDo(r.status));
  }
  return { data, headers: r.headers };
}

export async function get(path, signal) {
  return (await request('GET', path, undefined, signal)).data;
}

/** A GET of a paged list: the rows and, when the site says it, the total. */
export async function getPage(path, signal) {
  const { data, headers } = await request('GET', path, undefined, signal);
  const total = headers.get('X-Total-Count');
  return { rows: data, total: total === null ? null : Number(total) };
}

export async function post(path, body = {}, signal) {
  return (await request('POST', path, body, signal)).data;
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** A path segment: names may hold spaces and slashes (`hello 2.10-4`, `All Systems`). */
export function seg(s) {
  return encodeURIComponent(s);
}

/** Runs a report, one page of it (`limit`, `offset`) when asked. */
export function report(name, params = {}, signal) {
  return get(`/reports/${seg(name)}${qs(params)}`, signal);
}
