// Tollgate admin console: plain DOM + a small JSON:API client; navigation by URL fragment.
const JSONAPI = 'application/vnd.api+json';
const app = document.getElementById('app');
let me = null;

// ---------- JSON:API client (session cookie; the browser sends Origin on writes) ----------
class ApiError extends Error {
  constructor(status, errors) {
    super((errors[0] && (errors[0].detail || errors[0].title)) || `HTTP ${status}`);
    this.status = status; this.errors = errors;
  }
}
async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: JSONAPI } };
  if (body !== undefined) { init.headers['Content-Type'] = JSONAPI; init.body = JSON.stringify(body); }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const doc = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, doc.errors || []);
  return doc;
}
const q = (params) => Object.entries(params).filter(([, v]) => v !== '' && v != null)
  .map(([k, v]) => `${encodeURIComponent(k).replace(/%5B/g, '[').replace(/%5D/g, ']')}=${encodeURIComponent(v)}`).join('&');

// ---------- DOM helpers ----------
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
// A view draws its heading at once and its data when the API answers: its <main> is
// aria-busy until then (screen readers wait for it, and so can anything that reads the page).
function page(title, ...content) {
  document.title = `${title} · Tollgate`;
  const main = h('main', { id: 'main', tabindex: '-1', 'aria-busy': 'true' }, h('h1', {}, title), ...content);
  app.replaceChildren(...(me ? [header()] : []), main);
  return main;
}
function alertBox(err) { return h('div', { class: 'alert', role: 'alert' }, err.message || String(err)); }

// ---------- resources ----------
const TYPES = {
  users: { path: 'users', title: 'Users', cols: ['email', 'name', 'role', 'status'], sort: ['email', 'name', 'status'],
    filters: { status: ['', 'pending', 'active', 'suspended', 'cancelled'], role: ['', 'admin', 'user'] },
    fields: [['email', 'email'], ['name', 'text'], ['role', ['user', 'admin']], ['status', ['active', 'pending', 'suspended', 'cancelled']], ['password', 'password']],
    rels: { plan: 'plans' } },
  plans: { path: 'plans', title: 'Plans', cols: ['name', 'rate_limit_per_minute', 'requests_per_month', 'price_monthly', 'enabled'], sort: ['name', 'price_monthly', 'rate_limit_per_minute'],
    filters: { enabled: ['', 'true', 'false'] },
    fields: [['name', 'text'], ['description', 'textarea'], ['rate_limit_per_minute', 'number'], ['requests_per_month', 'number'], ['price_monthly', 'number'], ['currency', 'text'], ['overage_price', 'number'], ['is_default', 'bool'], ['enabled', 'bool']] },
  api_keys: { path: 'api-keys', title: 'API keys', cols: ['name', 'prefix', 'kind', 'status', 'last_used_at'], sort: ['name', 'last_used_at', 'expires_at'],
    filters: { status: ['', 'active', 'expired', 'revoked'], kind: ['', 'live', 'admin'] },
    fields: [['name', 'text'], ['kind', ['live', 'admin'], 'create'], ['expires_at', 'datetime']],
    rels: { user: 'users' } },
  routes: { path: 'routes', title: 'Routes', cols: ['name', 'path_pattern', 'match_type', 'priority', 'enabled'], sort: ['name', 'priority', 'path_pattern'],
    filters: { enabled: ['', 'true', 'false'], match_type: ['', 'exact', 'prefix', 'regex'] },
    fields: [['name', 'text'], ['description', 'textarea'], ['path_pattern', 'text'], ['match_type', ['prefix', 'exact', 'regex']], ['strip_path', 'bool'], ['auth_required', 'bool'], ['priority', 'number'], ['enabled', 'bool']],
    rels: { upstream: 'upstreams' },
    many: { allowed_plans: ['plans', 'None ticked: every plan may use this route.'], allowed_groups: ['groups', 'None ticked: no group restriction.'] } },
  upstreams: { path: 'upstreams', title: 'Upstreams', cols: ['name', 'base_url', 'health', 'enabled'], sort: ['name'],
    filters: { enabled: ['', 'true', 'false'], health: ['', 'up', 'down', 'unknown'] },
    fields: [['name', 'text'], ['description', 'textarea'], ['base_url', 'url'], ['timeout_ms', 'number'], ['health_check_path', 'text'], ['enabled', 'bool']] },
  groups: { path: 'groups', title: 'Groups', cols: ['name', 'slug', 'status', 'description'], sort: ['name', 'slug'], filters: { status: ['', 'active', 'suspended'] },
    fields: [['name', 'text'], ['slug', 'text'], ['description', 'textarea'], ['billing_email', 'email'], ['status', ['active', 'suspended']]],
    rels: { owner: 'users', plan: 'plans' }, members: true },
  webhooks: { path: 'webhooks', title: 'Webhooks', cols: ['name', 'url', 'events', 'enabled', 'consecutive_failures'], sort: ['name'],
    filters: { enabled: ['', 'true', 'false'] },
    fields: [['name', 'text'], ['url', 'url'], ['events', 'list'], ['description', 'textarea'], ['enabled', 'bool']] },
  events: { path: 'events', title: 'Audit log', cols: ['type', 'resource_type', 'resource_id', 'auth_method', 'created_at'], sort: [],
    filters: { resource_type: ['', 'users', 'plans', 'api_keys', 'routes', 'upstreams', 'groups', 'webhooks'] }, fields: [], readOnly: true, noSearch: true },
};
const byPath = Object.fromEntries(Object.entries(TYPES).map(([t, d]) => [d.path, t]));
const label = (name) => name.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
const show = (v) => v == null ? '—' : Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v);

async function listView(type, params) {
  const def = TYPES[type];
  const state = { number: +(params.get('page') || 1), sort: params.get('sort') || '', q: params.get('q') || '' };
  for (const f of Object.keys(def.filters)) state[f] = params.get(f) || '';
  const go = (change) => {
    const next = { ...state, ...change };
    location.hash = `#/${def.path}?` + q(Object.fromEntries(Object.entries(next).map(([k, v]) => [k === 'number' ? 'page' : k, v])));
  };
  const query = { 'page[number]': state.number, 'page[size]': 20, sort: state.sort, 'filter[q]': def.noSearch ? '' : state.q };
  for (const f of Object.keys(def.filters)) query[`filter[${f}]`] = state[f];
  if (!isAdmin() && type === 'api_keys') query['filter[user]'] = me.id;
  const main = page(def.title);
  let doc;
  try { doc = await api('GET', `/api/${def.path}?${q(query)}`); } catch (e) { main.append(alertBox(e)); return; }
  const search = h('input', { id: 'search', type: 'search', value: state.q });
  const toolbar = h('form', { class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); go({ q: search.value, number: 1 }); } },
    h('div', {}, h('label', { for: 'search' }, 'Search'), search));
  const selects = {};
  for (const [f, options] of Object.entries(def.filters)) {
    selects[f] = h('select', { id: `filter-${f}`, onchange: () => go({ [f]: selects[f].value, number: 1 }) },
      options.map((o) => h('option', { value: o, selected: o === state[f] }, o || 'any')));
    toolbar.append(h('div', {}, h('label', { for: `filter-${f}` }, label(f)), selects[f]));
  }
  toolbar.append(h('button', { type: 'submit' }, 'Apply'), def.readOnly ? null : h('a', { class: 'button', href: `#/${def.path}/new` }, `New ${def.title.replace(/s$/, '').toLowerCase()}`));
  if (def.noSearch) toolbar.firstChild.remove();
  const head = h('tr', {}, def.cols.map((c) => {
    if (!def.sort.includes(c)) return h('th', { scope: 'col' }, label(c));
    const dir = state.sort === c ? 'ascending' : state.sort === `-${c}` ? 'descending' : 'none';
    return h('th', { scope: 'col', 'aria-sort': dir }, h('button', { type: 'button', onclick: () => go({ sort: state.sort === c ? `-${c}` : c }) }, label(c), dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''));
  }));
  const rows = doc.data.map((r) => h('tr', {}, def.cols.map((c, i) => h('td', {}, i === 0 ? h('a', { href: `#/${def.path}/${r.id}` }, show(r.attributes[c])) : show(r.attributes[c])))));
  const total = doc.meta && doc.meta.total;
  const pages = total != null ? Math.max(1, Math.ceil(total / 20)) : null;
  main.append(toolbar, h('div', { class: 'scroll' }, h('table', {}, h('caption', { class: 'visually-hidden' }, def.title), h('thead', {}, head), h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: def.cols.length }, 'Nothing here yet.'))))),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', { type: 'button', class: 'secondary', disabled: state.number <= 1, onclick: () => go({ number: state.number - 1 }) }, 'Previous'),
      h('span', {}, `Page ${state.number}${pages ? ` of ${pages}` : ''}${total != null ? ` · ${total} in all` : ''}`),
      h('button', { type: 'button', class: 'secondary', disabled: !(doc.links && doc.links.next), onclick: () => go({ number: state.number + 1 }) }, 'Next')));
}

// ---------- forms with errors on their field ----------
function input(name, kind, value) {
  const id = `f-${name}`;
  if (Array.isArray(kind)) return h('select', { id, name }, kind.map((o) => h('option', { value: o, selected: o === value }, o)));
  // A new resource's switches start at the API's defaults (enabled, auth_required: on).
  if (kind === 'bool') return h('input', { id, name, type: 'checkbox', checked: value === undefined ? ['enabled', 'auth_required'].includes(name) : !!value });
  if (kind === 'textarea') return h('textarea', { id, name }, value || '');
  if (kind === 'list') return h('input', { id, name, type: 'text', value: (value || []).join(', '), 'aria-describedby': `${id}-hint` });
  const type = kind === 'datetime' ? 'datetime-local' : kind;
  return h('input', { id, name, type, value: value == null ? '' : kind === 'datetime' ? String(value).slice(0, 16) : value, autocomplete: kind === 'password' ? 'new-password' : null });
}
function readValue(el, kind) {
  if (kind === 'bool') return el.checked;
  if (kind === 'number') return el.value === '' ? undefined : Number(el.value);
  if (kind === 'datetime') return el.value ? new Date(el.value).toISOString() : null;
  if (kind === 'list') return el.value.split(',').map((x) => x.trim()).filter(Boolean);
  return el.value;
}
function showErrors(form, err) {
  form.querySelectorAll('.error').forEach((e) => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  const general = [];
  for (const e of (err.errors && err.errors.length ? err.errors : [{ detail: err.message }])) {
    const p = (e.source && e.source.pointer) || '';
    const m = p.match(/^\/data\/(?:attributes|relationships)\/([^/]+)/);
    const el = m && form.querySelector(`[name="${m[1]}"]`);
    if (el) {
      const id = `err-${m[1]}`;
      el.setAttribute('aria-invalid', 'true'); el.setAttribute('aria-describedby', id);
      el.closest('.field').append(h('p', { class: 'error', id }, e.detail || e.title || e.code));
    } else general.push(e.detail || e.title || e.code);
  }
  form.querySelector('.form-alert').replaceChildren(...general.map((g) => h('div', { class: 'alert', role: 'alert' }, g)));
  const first = form.querySelector('[aria-invalid]'); if (first) first.focus();
}
async function picker(rel, target, current) {
  const doc = await api('GET', `/api/${TYPES[target].path}?page[size]=100`);
  const shown = (r) => r.attributes.email || r.attributes.name || r.id;
  return h('select', { id: `f-${rel}`, name: rel }, h('option', { value: '' }, '—'),
    doc.data.map((r) => h('option', { value: r.id, selected: r.id === current }, shown(r))));
}

async function detailView(type, id) {
  const def = TYPES[type];
  const creating = id === 'new';
  const main = page(creating ? `New ${def.title.replace(/s$/, '').toLowerCase()}` : def.title.replace(/s$/, ''));
  let res = { attributes: {}, relationships: {} };
  if (!creating) {
    try { res = (await api('GET', `/api/${def.path}/${id}`)).data; } catch (e) { main.append(alertBox(e)); return; }
  }
  const form = h('form', { novalidate: true, hidden: def.readOnly }, h('div', { class: 'form-alert' }));
  const fields = def.fields.filter(([, , when]) => !(when === 'create' && !creating));
  for (const [name, kind] of fields) {
    if (!isAdmin() && type === 'api_keys' && name === 'kind') continue;
    form.append(h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label(name)), input(name, kind, res.attributes[name])));
  }
  const rels = isAdmin() ? (def.rels || {}) : {};
  for (const [rel, target] of Object.entries(rels)) {
    if (type === 'api_keys' && !creating) continue;
    const linkage = res.relationships && res.relationships[rel] && res.relationships[rel].data;
    form.append(h('div', { class: 'field' }, h('label', { for: `f-${rel}` }, label(rel)), await picker(rel, target, linkage && linkage.id)));
  }
  form.append(h('div', { class: 'actions' }, h('button', { type: 'submit' }, creating ? 'Create' : 'Save')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const attributes = {};
    for (const [name, kind] of fields) {
      const el = form.elements[name]; if (!el) continue;
      const v = readValue(el, kind);
      if (v === undefined || (name === 'password' && !v) || (creating && v === '')) continue;
      if (!creating && kind !== 'bool' && JSON.stringify(v) === JSON.stringify(res.attributes[name] ?? (kind === 'list' ? [] : ''))) continue;
      attributes[name] = v;
    }
    const relationships = {};
    for (const [rel, target] of Object.entries(rels)) {
      const el = form.elements[rel]; if (!el) continue;
      const had = !creating && res.relationships && res.relationships[rel] && res.relationships[rel].data;
      // '—' on a link the resource has clears it (data: null); the API refuses where one is required.
      if (el.value) relationships[rel] = { data: { type: target, id: el.value } };
      else if (had) relationships[rel] = { data: null };
    }
    const data = { type, attributes, relationships };
    if (!creating) data.id = id;
    try {
      const doc = await api(creating ? 'POST' : 'PATCH', creating ? `/api/${def.path}` : `/api/${def.path}/${id}`, { data });
      if (doc.data.meta && doc.data.meta.key) { render(() => secretView(doc.data)); return; }
      location.hash = `#/${def.path}/${doc.data.id}`;
      if (!creating) render(() => detailView(type, id)).then((current) => current && document.getElementById('main').prepend(h('div', { class: 'notice', role: 'status' }, 'Saved.')));
    } catch (err) { showErrors(form, err); }
  });
  main.append(form);
  if (creating) return;
  const actions = h('div', { class: 'actions' });
  if (type === 'api_keys') {
    actions.append(h('button', { type: 'button', class: 'secondary', onclick: async () => {
      if (!confirm('Revoke this key? The proxy refuses it from now on.')) return;
      await api('POST', `/api/api-keys/${id}/revoke`); render(() => detailView(type, id));
    } }, 'Revoke'));
    const grace = h('input', { id: 'grace', type: 'number', min: 0, max: 604800, value: 86400 });
    actions.append(h('label', { for: 'grace' }, 'Grace (s)'), grace, h('button', { type: 'button', class: 'secondary', onclick: async () => {
      try {
        const doc = await api('POST', `/api/api-keys/${id}/rotate`, { data: { type: 'api_key_rotations', attributes: { grace_seconds: Number(grace.value) } } });
        render(() => secretView(doc.data));
      } catch (err) { main.append(alertBox(err)); }
    } }, 'Rotate'));
  }
  if (type === 'webhooks') {
    actions.append(h('button', { type: 'button', class: 'secondary', onclick: async () => { try { await api('POST', `/api/webhooks/${id}/test`); render(() => detailView(type, id)); } catch (err) { main.append(alertBox(err)); } } }, 'Send test'),
      h('button', { type: 'button', class: 'secondary', onclick: async () => { try { const d = await api('POST', `/api/webhooks/${id}/rotate-secret`); if (d && d.data.meta) render(() => secretView(d.data)); } catch (err) { main.append(alertBox(err)); } } }, 'Rotate secret'));
  }
  if (!def.readOnly && (isAdmin() || type === 'api_keys')) {
    actions.append(h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Delete this ${def.title.replace(/s$/, '').toLowerCase()}? This cannot be undone.`)) return;
      try { await api('DELETE', `/api/${def.path}/${id}`); location.hash = `#/${def.path}`; } catch (err) { main.append(alertBox(err)); }
    } }, 'Delete'));
  }
  main.append(h('h2', {}, 'Details'), h('dl', {}, Object.entries(res.attributes).flatMap(([k, v]) => [h('dt', {}, label(k)), h('dd', {}, show(v))])), actions);
  for (const [rel, [target, hint]] of Object.entries(def.many || {})) await toMany(main, def, id, rel, target, hint);
  if (def.members) await members(main, id);
  if (type === 'webhooks') await deliveries(main, id);
}

// ---------- to-many relationships, through their relationship endpoints ----------
// GET …/relationships/{rel} is paginated like a collection: follow links.next to the end.
async function linkage(path) {
  const all = []; let next = `${path}?page[size]=100`;
  for (let i = 0; next && i < 50; i++) { const doc = await api('GET', next); all.push(...doc.data); next = doc.links && doc.links.next; }
  return all;
}
// A route's allowed plans or groups: one checkbox per candidate, saved with PATCH (full replacement).
async function toMany(main, def, id, rel, target, hint) {
  const path = `/api/${def.path}/${id}/relationships/${rel}`;
  const section = h('section', { id: `rel-${rel}`, 'aria-labelledby': `rel-${rel}-h` }, h('h2', { id: `rel-${rel}-h` }, label(rel)));
  main.append(section);
  let linked; let candidates;
  try { [linked, candidates] = await Promise.all([linkage(path), api('GET', `/api/${TYPES[target].path}?page[size]=100&sort=name`)]); } catch (e) { section.append(alertBox(e)); return; }
  const chosen = new Set(linked.map((r) => r.id));
  const status = h('p', { role: 'status' });
  const boxes = candidates.data.map((r) => h('div', { class: 'check' },
    h('input', { type: 'checkbox', id: `rel-${rel}-${r.id}`, name: rel, value: r.id, checked: chosen.has(r.id) }),
    h('label', { for: `rel-${rel}-${r.id}` }, r.attributes.name || r.id)));
  const form = h('form', { novalidate: true }, h('div', { class: 'form-alert' }),
    h('fieldset', { 'aria-describedby': `rel-${rel}-hint` }, h('legend', { class: 'visually-hidden' }, label(rel)), h('p', { class: 'hint', id: `rel-${rel}-hint` }, hint),
      boxes.length ? boxes : h('p', {}, `No ${TYPES[target].title.toLowerCase()} yet.`)),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, `Save ${label(rel).toLowerCase()}`), status));
  form.addEventListener('submit', async (e) => {
    e.preventDefault(); status.textContent = '';
    const data = [...form.querySelectorAll(`input[name="${rel}"]:checked`)].map((b) => ({ type: target, id: b.value }));
    try { const doc = await api('PATCH', path, { data }); form.querySelector('.form-alert').replaceChildren(); status.textContent = `Saved: ${doc.data.length} ${doc.data.length === 1 ? 'entry' : 'entries'}.`; } catch (err) { showErrors(form, err); }
  });
  section.append(form);
}
// A group's members: POST / DELETE …/relationships/members add and remove, each with its role.
async function members(main, id) {
  const path = `/api/groups/${id}/relationships/members`;
  const section = document.getElementById('members') || main.appendChild(h('section', { id: 'members', 'aria-labelledby': 'members-h' }));
  section.replaceChildren(h('h2', { id: 'members-h' }, 'Members'));
  let linked; let users;
  try { [linked, users] = await Promise.all([linkage(path), api('GET', '/api/users?page[size]=100&sort=email')]); } catch (e) { section.append(alertBox(e)); return; }
  const email = Object.fromEntries(users.data.map((u) => [u.id, u.attributes.email]));
  const alert = h('div', { class: 'form-alert' });
  const change = async (method, data) => {
    try { await api(method, path, { data }); } catch (err) { alert.replaceChildren(alertBox(err)); return; }
    await members(main, id);
  };
  const rows = linked.map((m) => {
    const who = email[m.id] || m.id; const role = (m.meta && m.meta.role) || 'member';
    return h('tr', {}, h('td', {}, h('a', { href: `#/users/${m.id}` }, who)), h('td', {}, role),
      h('td', {}, role === 'owner' ? '—' : h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${who}`, onclick: () => change('DELETE', [{ type: 'users', id: m.id }]) }, 'Remove')));
  });
  const present = new Set(linked.map((m) => m.id));
  const user = h('select', { id: 'member-user' }, users.data.filter((u) => !present.has(u.id)).map((u) => h('option', { value: u.id }, u.attributes.email)));
  const role = h('select', { id: 'member-role' }, ['member', 'admin'].map((r) => h('option', { value: r }, r)));
  const add = h('form', { class: 'toolbar', 'aria-label': 'Add a member' },
    h('div', {}, h('label', { for: 'member-user' }, 'User'), user), h('div', {}, h('label', { for: 'member-role' }, 'Member role'), role),
    h('button', { type: 'submit', disabled: !user.options.length }, 'Add member'));
  add.addEventListener('submit', (e) => { e.preventDefault(); if (user.value) change('POST', [{ type: 'users', id: user.value, meta: { role: role.value } }]); });
  section.append(alert, h('div', { class: 'scroll' }, h('table', {}, h('caption', { class: 'visually-hidden' }, 'Members'), h('thead', {}, h('tr', {}, ['User', 'Role', 'Action'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 3 }, 'No members.'))))), add);
}
async function deliveries(main, id) {
  try {
    const doc = await api('GET', `/api/webhooks/${id}/deliveries?page[size]=20`);
    const section = document.getElementById('deliveries') || main.appendChild(h('section', { id: 'deliveries', 'aria-labelledby': 'deliveries-h' }));
    section.replaceChildren(h('h2', { id: 'deliveries-h' }, 'Deliveries'), h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Event', 'Attempt', 'Status code', 'Succeeded', 'When', 'Action'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, doc.data.length ? doc.data.map((d) => h('tr', {}, h('td', {}, show(d.attributes.event_type)), h('td', {}, show(d.attributes.attempt)), h('td', {}, show(d.attributes.status_code ?? d.attributes.error)), h('td', {}, show(d.attributes.succeeded)), h('td', {}, show(d.attributes.created_at)),
        h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: async () => { try { await api('POST', `/api/webhooks/${id}/deliveries/${d.id}/redeliver`); } catch (err) { section.append(alertBox(err)); return; } deliveries(main, id); } }, 'Redeliver')))) : h('tr', {}, h('td', { colspan: 6 }, 'No deliveries yet.'))))));
  } catch (e) { main.append(alertBox(e)); }
}
function secretView(res) {
  const secret = res.meta.key || res.meta.secret;
  const main = page('Copy the secret now');
  const code = h('p', { class: 'secret', id: 'secret' }, secret);
  const copied = h('span', { role: 'status' });
  main.append(h('div', { class: 'notice' }, 'This secret is shown once. Tollgate keeps only its digest: after you leave this page it cannot be shown again.'), code,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: async () => { try { await navigator.clipboard.writeText(secret); copied.textContent = 'Copied.'; } catch { copied.textContent = 'Copying failed: select the secret and copy it.'; } } }, 'Copy'), copied,
      h('a', { class: 'button', href: `#/${res.type === 'api_keys' ? 'api-keys' : 'webhooks'}/${res.id}` }, 'Done')));
}

// ---------- usage ----------
async function usageView(params) {
  const period = params.get('period') || '24h';
  const main = page(isAdmin() ? 'Usage' : 'My usage');
  const sel = h('select', { id: 'period', onchange: () => { location.hash = `#/usage?period=${sel.value}`; } }, ['1h', '24h', '7d', '30d', 'month'].map((p) => h('option', { value: p, selected: p === period }, p)));
  main.append(h('div', { class: 'toolbar' }, h('div', {}, h('label', { for: 'period' }, 'Period'), sel)));
  const filter = isAdmin() ? '' : `&filter[user]=${me.id}`;
  const figure = h('figure', { id: 'usage-chart' });
  main.append(figure);
  try {
    const doc = await api('GET', `/api/usage/series?filter[period]=${period}${filter}`);
    const points = doc.meta.points;
    const max = Math.max(1, ...points.map((p) => p.requests));
    const total = points.reduce((s, p) => s + p.requests, 0);
    figure.append(h('div', { class: 'chart', role: 'img', 'aria-label': `Requests per ${doc.meta.interval}, ${total} in all` },
      points.map((p) => h('div', { class: 'bar', title: `${p.at}: ${p.requests}`, 'data-height': Math.round(100 * p.requests / max) }))),
      h('figcaption', {}, `Requests: `, h('strong', { 'data-testid': 'usage-total' }, String(total)), ` in ${period} (per ${doc.meta.interval})`));
    figure.querySelectorAll('.bar').forEach((b) => { b.style.height = `${b.dataset.height}%`; });
  } catch (e) {
    // A gateway without the series endpoint answers 404 (or 400: the path is read as a usage record id): totals then.
    if (e.status !== 404 && e.status !== 400) { figure.append(alertBox(e)); return; }
    try {
      const doc = await api('GET', `/api/usage/summary?filter[period]=${period === '30d' ? 'month' : period}${filter}`);
      const m = doc.meta || {};
      const totals = m.totals || m;
      const requests = totals.requests ?? 0;
      figure.append(h('div', { class: 'chart', role: 'img', 'aria-label': `${requests} requests this period` }, h('div', { class: 'bar', 'data-height': 100 })),
        h('figcaption', {}, 'Requests: ', h('strong', { 'data-testid': 'usage-total' }, String(requests)), ' (totals of the current period)'));
      figure.querySelectorAll('.bar').forEach((b) => { b.style.height = requests ? '100%' : '2%'; });
    } catch (e2) { figure.append(alertBox(e2)); }
  }
  if (!isAdmin()) await quotaMeter(main);
}
// The monthly quota (proxy.md §5): the limit is the plan's requests_per_month (-1: unlimited), the
// use is what the usage summary counts toward it this calendar month (totals.counted, overage
// included) on the user's own keys; group keys count toward their group's quota instead.
async function quotaMeter(main) {
  const plan = me.relationships && me.relationships.plan && me.relationships.plan.data;
  if (!plan) return;
  const section = main.appendChild(h('section', { id: 'quota', 'aria-labelledby': 'quota-h' }, h('h2', { id: 'quota-h' }, 'Quota this month')));
  try {
    const [p, summary] = await Promise.all([api('GET', `/api/plans/${plan.id}`), api('GET', `/api/usage/summary?filter[period]=month&filter[user]=${me.id}&filter[group]=none`)]);
    const limit = p.data.attributes.requests_per_month;
    const used = summary.meta.totals.counted;
    const name = p.data.attributes.name;
    if (limit == null || limit < 0) { section.append(h('p', { 'data-testid': 'quota-text' }, `${used} requests counted this month; the ${name} plan has no monthly quota.`)); return; }
    const meter = h('div', { class: 'meter', role: 'meter', 'aria-labelledby': 'quota-h', 'aria-valuemin': 0, 'aria-valuemax': limit, 'aria-valuenow': Math.min(used, limit), 'aria-valuetext': `${used} of ${limit} requests` }, h('span', {}));
    meter.firstChild.style.width = `${limit ? Math.min(100, (100 * used) / limit) : 100}%`;
    section.append(meter, h('p', { 'data-testid': 'quota-text' }, `${used} of ${limit} requests (${name} plan)${used > limit ? `, ${used - limit} beyond the quota` : ''}`));
  } catch (e) { section.append(alertBox(e)); }
}

// ---------- auth pages ----------
function loginView() {
  me = null;
  // Already on the sign-in form (say `/` then `#/login`): keep it and what has been typed in it.
  if (document.getElementById('login-form')) return;
  const main = page('Sign in to Tollgate');
  const form = h('form', { id: 'login-form', class: 'card', novalidate: true }, h('div', { class: 'form-alert' }),
    h('div', { class: 'field' }, h('label', { for: 'f-email' }, 'Email'), h('input', { id: 'f-email', name: 'email', type: 'email', autocomplete: 'username', required: true })),
    h('div', { class: 'field' }, h('label', { for: 'f-password' }, 'Password'), h('input', { id: 'f-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in'), h('a', { href: '#/forgot-password' }, 'Forgot password?')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/api/auth/login', { data: { type: 'sessions', attributes: { email: form.elements.email.value, password: form.elements.password.value } } });
      await loadMe();
      if (location.hash === '#/' || location.hash === '') route(); else location.hash = '#/';
    } catch (err) { showErrors(form, err); }
  });
  main.append(form);
}
function forgotView() {
  const main = page('Forgot password');
  const form = h('form', { class: 'card' }, h('div', { class: 'form-alert' }), h('div', { class: 'field' }, h('label', { for: 'f-email' }, 'Email'), h('input', { id: 'f-email', name: 'email', type: 'email', required: true })), h('button', { type: 'submit' }, 'Send reset link'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try { await api('POST', '/api/auth/forgot-password', { data: { type: 'password_resets', attributes: { email: form.elements.email.value } } }); form.replaceChildren(h('p', { role: 'status' }, 'If that address has an account, a reset link is on its way.')); } catch (err) { showErrors(form, err); }
  });
  main.append(form);
}
function resetView(params) {
  const main = page('Choose a new password');
  const form = h('form', { class: 'card' }, h('div', { class: 'form-alert' }), h('div', { class: 'field' }, h('label', { for: 'f-password' }, 'New password'), h('input', { id: 'f-password', name: 'password', type: 'password', autocomplete: 'new-password', required: true })), h('button', { type: 'submit' }, 'Set password'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try { await api('POST', '/api/auth/reset-password', { data: { type: 'password_resets', attributes: { token: params.get('token') || '', password: form.elements.password.value } } }); form.replaceChildren(h('p', { role: 'status' }, 'Password changed. '), h('a', { href: '#/login' }, 'Sign in')); } catch (err) { showErrors(form, err); }
  });
  main.append(form);
}
function profileView() {
  const main = page('My profile');
  const nameForm = h('form', {}, h('div', { class: 'form-alert' }), h('div', { class: 'field' }, h('label', { for: 'f-name' }, 'Name'), h('input', { id: 'f-name', name: 'name', value: me.attributes.name || '' })), h('button', { type: 'submit' }, 'Save name'));
  nameForm.addEventListener('submit', async (e) => { e.preventDefault(); try { await api('PATCH', '/api/auth/me', { data: { type: 'users', id: me.id, attributes: { name: nameForm.elements.name.value } } }); await loadMe(); render(profileView); } catch (err) { showErrors(nameForm, err); } });
  const pw = h('form', {}, h('div', { class: 'form-alert' }), h('div', { class: 'field' }, h('label', { for: 'f-current_password' }, 'Current password'), h('input', { id: 'f-current_password', name: 'current_password', type: 'password', autocomplete: 'current-password' })),
    h('div', { class: 'field' }, h('label', { for: 'f-password' }, 'New password'), h('input', { id: 'f-password', name: 'password', type: 'password', autocomplete: 'new-password' })), h('button', { type: 'submit' }, 'Change password'));
  pw.addEventListener('submit', async (e) => { e.preventDefault(); try { await api('PATCH', '/api/auth/me', { data: { type: 'users', id: me.id, attributes: { current_password: pw.elements.current_password.value, password: pw.elements.password.value } } }); pw.replaceChildren(h('p', { class: 'notice', role: 'status' }, 'Password changed.')); } catch (err) { showErrors(pw, err); } });
  main.append(h('dl', {}, h('dt', {}, 'Email'), h('dd', {}, me.attributes.email), h('dt', {}, 'Role'), h('dd', {}, me.attributes.role)), nameForm, h('h2', {}, 'Password'), pw);
}

// ---------- shell ----------
const isAdmin = () => me && me.attributes.role === 'admin';
function header() {
  const current = location.hash.split('?')[0].split('/')[1] || '';
  const links = isAdmin()
    ? [['', 'Home'], ...Object.values(TYPES).map((d) => [d.path, d.title]), ['usage', 'Usage'], ['profile', 'Profile']]
    : [['', 'Home'], ['api-keys', 'My keys'], ['usage', 'My usage'], ['profile', 'Profile']];
  return h('header', {}, h('a', { class: 'brand', href: '#/' }, 'Tollgate'),
    h('nav', { 'aria-label': 'Main' }, h('ul', {}, links.map(([p, t]) => h('li', {}, h('a', { href: `#/${p}`, 'aria-current': p === current ? 'page' : null }, t))))),
    h('div', { class: 'who' }, h('span', {}, me.attributes.email), h('button', { type: 'button', class: 'secondary', onclick: logout }, 'Sign out')));
}
async function logout() { await api('POST', '/api/auth/logout').catch(() => {}); me = null; location.hash = '#/login'; }
async function loadMe() {
  try { me = (await api('GET', '/api/auth/me')).data; } catch (e) { if (e.status !== 401) throw e; me = null; }
}
function homeView() {
  page(`Welcome, ${me.attributes.name || me.attributes.email}`, h('p', {}, isAdmin() ? 'Manage the gateway from the menu above.' : 'Your keys and your usage are in the menu above.'));
}
// Each navigation is one generation: a view whose generation has passed (the user went on
// while it waited for the API) must not draw over the newer one, nor mark it ready.
let generation = 0;
async function render(view) {
  const mine = ++generation;
  await view(() => mine !== generation);
  const main = document.getElementById('main');
  if (mine !== generation) return false;
  if (main) main.removeAttribute('aria-busy');
  return true;
}
const route = () => render(routeView);
async function routeView(stale) {
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'forgot-password') return forgotView();
  if (parts[0] === 'reset-password') return resetView(params);
  if (!me) await loadMe();
  if (stale()) return;
  if (!me || parts[0] === 'login') return loginView();
  const type = byPath[parts[0]];
  if (type && (isAdmin() || type === 'api_keys')) return parts[1] ? detailView(type, parts[1]) : listView(type, params);
  if (parts[0] === 'usage') return usageView(params);
  if (parts[0] === 'profile') return profileView();
  return homeView();
}
// Focus goes to a new page's <main>; a page kept as it was (the sign-in form) keeps its focus.
window.addEventListener('hashchange', () => {
  const before = document.getElementById('main');
  route().then(() => { const m = document.getElementById('main'); if (m && m !== before) m.focus(); });
});
// The first view drawn with its data: the first-load time (from navigation start) is this mark's.
route().then(() => performance.mark('console-ready'));
