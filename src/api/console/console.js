// Warden console: plain DOM, no framework. Every datum comes from the HTTP/JSON gateway on
// this origin (POST /warden.v1.<Service>/<Method>); nothing here decides anything.
'use strict';

const ROLES = ['admin', 'org_contributor', 'team_contributor', 'org_user'];
const UNIX_ONLY = 'This call is reserved to operators on the daemon\u2019s Unix socket; a browser reaches the TCP gateway only. Run it with the warden CLI on the host.';

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function actor() { return sessionStorage.getItem('actor') || ''; }

class RpcError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function rpc(method, body) {
  const headers = { 'content-type': 'application/json' };
  const token = sessionStorage.getItem('token');
  if (token) headers.authorization = 'Bearer ' + token;
  const resp = await fetch('/warden.v1.' + method, { method: 'POST', headers, body: JSON.stringify(body || {}) });
  let data = {};
  try { data = await resp.json(); } catch (e) { data = { code: 'unknown', message: 'reply was not JSON' }; }
  if (!resp.ok) throw new RpcError(resp.status, data.code || 'unknown', data.message || '');
  return data;
}

// A refusal in place: the gateway's status, code and message, and why for operator calls.
function errorBox(e) {
  const box = h('p', { class: 'err', role: 'alert' });
  if (e instanceof RpcError) {
    box.append(`${e.status} ${e.code}: ${e.message}`);
    if (e.code === 'permission_denied' && /unix socket/i.test(e.message)) box.append(h('br'), h('span', { class: 'muted' }, UNIX_ONLY));
  } else {
    box.append(String(e && e.message || e));
  }
  return box;
}

function when(ms) {
  const n = Number(ms || 0);
  return n ? new Date(n).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '\u2014';
}

function firstArray(reply) {
  for (const v of Object.values(reply)) if (Array.isArray(v)) return v;
  return [];
}

function params() { return new URLSearchParams(location.search); }

function go(p) {
  history.pushState(null, '', '?' + new URLSearchParams(p).toString());
  render();
}

function link(text, p) {
  return h('a', { href: '?' + new URLSearchParams(p).toString(), onclick: (ev) => { ev.preventDefault(); go(p); } }, text);
}

function field(label, input) { return h('label', {}, label, input); }

function section(title, id) {
  const body = h('div', { id });
  return [h('h2', { id: id + '-h' }, title), body];
}

// Run `load` into `el`, replacing its content; a refusal shows there.
async function fill(el, load) {
  el.replaceChildren(h('p', { class: 'muted' }, 'Loading\u2026'));
  try { el.replaceChildren(...[].concat(await load())); } catch (e) { el.replaceChildren(errorBox(e)); }
}

function table(cols, rows) {
  return h('table', { class: 'rows' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((cell, i) => h('td', { 'data-label': cols[i] }, cell))))));
}

// A paged list: `fetchPage(token)` → {rows, next}; keeps the tokens seen for "previous".
function pager(el, fetchPage, render) {
  const tokens = [''];
  let at = 0;
  const show = async () => {
    await fill(el, async () => {
      const { items, next } = await fetchPage(tokens[at]);
      tokens[at + 1] = next;
      const nav = h('div', { class: 'bar' },
        h('button', { type: 'button', class: 'plain', disabled: at === 0, onclick: () => { at -= 1; show(); } }, 'Previous page'),
        ' ',
        h('button', { type: 'button', class: 'plain', disabled: !next, onclick: () => { at += 1; show(); } }, 'Next page'));
      return [render(items), nav];
    });
  };
  show();
}

// ---------------------------------------------------------------- organizations

function viewOrgs(main) {
  const p = params();
  const q = h('input', { name: 'query', value: p.get('query') || '', placeholder: 'id or name' });
  const order = h('select', { name: 'order_by' },
    [['name', 'Name A\u2013Z'], ['name desc', 'Name Z\u2013A'], ['updated_at desc', 'Recently updated'],
      ['member_count desc', 'Most members'], ['created_at desc', 'Newest']].map(([v, t]) =>
      h('option', { value: v, selected: (p.get('order_by') || 'name') === v }, t)));
  const list = h('div', { id: 'org-list' });
  const form = h('form', { class: 'bar', role: 'search', onsubmit: (ev) => { ev.preventDefault(); go({ view: 'orgs', query: q.value, order_by: order.value }); } },
    field('Search', q), field('Sort by', order), h('button', { type: 'submit' }, 'Search'));
  const scope = h('p', { class: 'muted', id: 'org-scope' });
  main.replaceChildren(h('h1', {}, 'Organizations'), scope, form, list, ...section('Limits in force', 'limits'));
  // A platform admin (the policy grants `org:list_all` on `instance` in domain `*`) sees
  // every org, anyone else the orgs they belong to. The page asks the policy which (a Check,
  // so no refused call is needed to find out); ListOrgs authorizes `all` again itself.
  let everyOrg = null;
  pager(list, async (token) => {
    if (everyOrg === null) {
      const c = await rpc('AuthzService/Check', { subject: actor(), org: '*', resource: 'instance', action: 'org:list_all' });
      everyOrg = !!c.allowed;
      scope.textContent = everyOrg
        ? `Every org of the instance: the policy lets ${actor()} list them all (org:list_all on instance).`
        : `The orgs ${actor()} belongs to. Listing every org needs org:list_all on instance (a platform admin) or the Unix socket.`;
    }
    const base = { actor: actor(), query: q.value, order_by: order.value, page_size: 20, page_token: token };
    const r = await rpc('OrgService/ListOrgs', everyOrg ? { ...base, all: true } : { ...base, user_id: actor() });
    return { items: r.orgs, next: r.next_page_token };
  }, (orgs) => orgs.length ? table(['Org', 'Name', 'Plan', 'Members', 'Updated'], orgs.map((o) =>
    [link(o.org_id, { view: 'org', org: o.org_id }), o.name, o.plan, o.member_count, when(o.updated_at_unix_ms)]))
    : h('p', {}, 'No organizations match.'));
  fill(document.getElementById('limits'), async () => {
    const l = await rpc('OrgLifecycleService/GetLimits', {});
    const plans = (l.plans || []).map((pl) => [pl.plan_id, (pl.roles || []).join(', '), pl.teams ? 'yes' : 'no', pl.max_orgs_per_user || 'no limit']);
    return [h('p', {}, `Default plan: ${l.default_plan}; default membership limit: ${l.default_membership_limit || 'none'}; users may create orgs: ${l.users_can_create_orgs}.`),
      plans.length ? table(['Plan', 'Roles', 'Teams', 'Orgs per user'], plans) : h('p', {}, 'No plans.')];
  });
}

function viewOrg(main) {
  const org = params().get('org') || '';
  const head = h('div', {});
  main.replaceChildren(h('p', {}, link('\u2190 Organizations', { view: 'orgs' })), head,
    ...section('Members', 'members'), ...section('Teams', 'teams'), ...section('Apps', 'apps'),
    ...section('Pending invitations', 'invitations'), ...section('Membership requests', 'requests'),
    ...section('Domains', 'domains'), ...section('Security settings', 'security'), ...section('Tokens', 'tokens'));
  fill(head, async () => {
    const o = await rpc('OrgService/GetOrg', { actor: actor(), org_id: org });
    const s = o.settings || {};
    return [h('h1', {}, `${o.name} `, h('span', { class: 'muted' }, `(${o.org_id})`)),
      h('p', {}, `Plan ${o.plan} \u00b7 ${o.member_count} members \u00b7 membership limit ${s.max_memberships || 'plan default'} \u00b7 created ${when(o.created_at_unix_ms)} by ${o.created_by} \u00b7 updated ${when(o.updated_at_unix_ms)}`)];
  });
  members(org);
  // Counts only: a team's member ids are fetched when the user opens that team.
  pager(document.getElementById('teams'), async (token) => {
    const r = await rpc('TeamService/ListTeams', { actor: actor(), org_id: org, omit_member_ids: true, page_size: 50, page_token: token });
    return { items: r.teams, next: r.next_page_token };
  }, (teams) => teams.length ? table(['Team', 'Members', 'App grants'], teams.map((t) =>
    [`${t.name} (${t.team_id})`, teamMembers(org, t), (t.app_grants || []).map((g) => `${g.app_id}${g.role ? ' as ' + g.role : ''}`).join(', ') || '\u2014']))
    : h('p', {}, 'No teams.'));
  apps(org);
  const simple = (id, method, body, cols, row, empty) => fill(document.getElementById(id), async () => {
    const items = firstArray(await rpc(method, body));
    return items.length ? table(cols, items.map(row)) : h('p', {}, empty);
  });
  simple('invitations', 'InvitationService/ListOrgInvitations', { actor: actor(), org_id: org, status: 'pending', page_size: 50 },
    ['Invitee', 'Role', 'Invited by', 'Expires'], (i) => [i.email || i.user_id, i.role, i.invited_by, when(i.expires_at_unix_ms)], 'No pending invitations.');
  simple('requests', 'DomainService/ListMembershipRequests', { actor: actor(), org_id: org, status: 'pending' },
    ['User', 'Domain', 'Role', 'Asked'], (r) => [r.user_id, r.domain, r.role, when(r.created_at_unix_ms)], 'No pending requests.');
  simple('domains', 'DomainService/ListDomains', { actor: actor(), org_id: org },
    ['Domain', 'Verified', 'Enrollment', 'Role'], (d) => [d.domain, d.verified ? when(d.verified_at_unix_ms) : 'not verified', d.enrollment_mode, d.role], 'No domains.');
  fill(document.getElementById('security'), async () => {
    const s = await rpc('SecurityService/GetSecuritySettings', { actor: actor(), org_id: org });
    const pw = s.password || {};
    const idps = (s.identity_providers || []).map((p) => [p.idp_id, p.saml ? 'SAML' : p.oidc ? 'OIDC' : '?', p.auto_join_role || '\u2014']);
    return [h('p', {}, `Password policy: ${Object.entries(pw).map(([k, v]) => `${k} ${v}`).join(', ') || 'defaults'}. Updated ${when(s.updated_at_unix_ms)} by ${s.updated_by || '\u2014'}. Secrets are never shown.`),
      idps.length ? table(['Identity provider', 'Kind', 'Auto-join role'], idps) : h('p', {}, 'No identity providers.')];
  });
  simple('tokens', 'TokenService/ListTokens', { actor: actor(), owner: { org_id: org }, page_size: 50 },
    ['Token', 'Role', 'Scopes', 'Created', 'Expires', 'Last used'],
    (t) => [`${t.name} (${t.token_id})`, t.role, (t.scopes || []).join(' '), when(t.created_at_unix_ms), when(t.expires_at_unix_ms), when(t.last_used_at_unix_ms)],
    'No tokens.');
}

function members(org) {
  const el = document.getElementById('members');
  const q = h('input', { name: 'member-query', placeholder: 'user id, username or email' });
  const order = h('select', { name: 'member-order' }, [['id', 'User id A\u2013Z'], ['id desc', 'User id Z\u2013A'], ['created_at desc', 'Recently joined'], ['updated_at desc', 'Recently changed']].map(([v, t]) => h('option', { value: v }, t)));
  const list = h('div', {});
  const load = () => pager(list, async (token) => {
    const r = await rpc('MemberService/ListMembers', { actor: actor(), org_id: org, query: q.value, order_by: order.value, page_size: 25, page_token: token });
    return { items: r.members, next: r.next_page_token };
  }, (ms) => ms.length ? table(['Member', 'Role', 'Teams', 'Joined', 'Actions'], ms.map((m) => memberRow(org, m, load))) : h('p', {}, 'No members match.'));
  el.replaceChildren(h('form', { class: 'bar', role: 'search', onsubmit: (ev) => { ev.preventDefault(); load(); } },
    field('Search members', q), field('Sort by', order), h('button', { type: 'submit' }, 'Search')), list);
  load();
}

// A team's member count; opening it pages the member ids (TeamService.ListTeamMembers).
function teamMembers(org, t) {
  const count = Number(t.member_count || 0);
  if (!count) return '0';
  const list = h('div', { id: `team-members-${t.team_id}` });
  let loaded = false;
  const details = h('details', { ontoggle: () => {
    if (!details.open || loaded) return;
    loaded = true;
    pager(list, async (token) => {
      const r = await rpc('TeamService/ListTeamMembers', { actor: actor(), org_id: org, team_id: t.team_id, page_size: 50, page_token: token });
      return { items: r.user_ids, next: r.next_page_token };
    }, (ids) => h('ul', { class: 'ids' }, ids.map((id) => h('li', {}, id))));
  } }, h('summary', {}, `${count} member${count === 1 ? '' : 's'}`), list);
  return details;
}

function memberRow(org, m, reload) {
  const status = h('span', { class: 'status', id: `status-${m.user_id}`, 'aria-live': 'polite' });
  const roles = ROLES.includes(m.role) ? ROLES : ROLES.concat([m.role]);
  const select = h('select', { 'aria-label': `Role of ${m.user_id}`, name: `role-${m.user_id}`, id: `role-${m.user_id}` }, roles.map((r) => h('option', { value: r, selected: r === m.role }, r)));
  const change = h('button', { type: 'button', id: `change-${m.user_id}`, onclick: async () => {
    status.replaceChildren('Saving\u2026');
    try {
      const r = await rpc('MemberService/UpdateMemberRole', { actor: actor(), org_id: org, user_id: m.user_id, role: select.value });
      status.replaceChildren(h('span', { class: 'ok' }, `Saved at revision ${r.revision}.`));
    } catch (e) { status.replaceChildren(errorBox(e)); }
  } }, 'Change role');
  const remove = h('button', { type: 'button', id: `remove-${m.user_id}`, class: 'danger', onclick: async () => {
    if (!window.confirm(`Remove ${m.user_id} from ${org}?`)) return;
    try {
      await rpc('MemberService/RemoveMember', { actor: actor(), org_id: org, user_id: m.user_id });
      reload();
    } catch (e) { status.replaceChildren(errorBox(e)); }
  } }, 'Remove');
  return [m.user_id, h('span', {}, select, ' ', change), (m.team_ids || []).join(', ') || '\u2014', when(m.created_at_unix_ms), h('span', {}, remove, ' ', status)];
}

function apps(org) {
  const el = document.getElementById('apps');
  const q = h('input', { name: 'app-query', placeholder: 'id or name' });
  const label = h('input', { name: 'app-label', placeholder: 'e.g. pii' });
  const order = h('select', { name: 'app-order' }, [['name', 'Name A\u2013Z'], ['name desc', 'Name Z\u2013A'], ['updated_at desc', 'Last updated'], ['created_at desc', 'Newest']].map(([v, t]) => h('option', { value: v }, t)));
  const list = h('div', {});
  const load = () => pager(list, async (token) => {
    const r = await rpc('AppService/ListApps', { actor: actor(), owner: { org_id: org }, query: q.value, labels: label.value ? [label.value] : [], order_by: order.value, page_size: 20, page_token: token });
    return { items: r.apps, next: r.next_page_token };
  }, (list) => list.length ? h('div', { class: 'cards' }, list.map(appCard)) : h('p', {}, 'No apps match.'));
  el.replaceChildren(h('form', { class: 'bar', role: 'search', onsubmit: (ev) => { ev.preventDefault(); load(); } },
    field('Search apps', q), field('Label', label), field('Sort by', order), h('button', { type: 'submit' }, 'Search')), list);
  load();
}

function appCard(a) {
  const extra = h('div', {});
  fill(extra, async () => {
    const [c, v] = await Promise.all([
      rpc('CollaboratorService/ListCollaborators', { actor: actor(), app_id: a.app_id, page_size: 20 }).catch((e) => e),
      rpc('PublishingService/ListAppVersions', { actor: actor(), app_id: a.app_id, state: 'pending', page_size: 20 }).catch((e) => e),
    ]);
    const part = (r, label, fmt) => (r instanceof Error ? errorBox(r) : h('p', {}, `${label}: `, firstArray(r).map(fmt).join(', ') || 'none'));
    return [part(c, 'Collaborators', (x) => `${x.user_id} (${x.role})`), part(v, 'Awaiting approval', (x) => x.version)];
  });
  return h('div', { class: 'card' }, h('strong', {}, a.name), ' ', h('code', {}, a.app_id), h('div', {}, (a.labels || []).map((l) => h('span', { class: 'tag' }, l))),
    h('p', { class: 'muted' }, `updated ${when(a.updated_at_unix_ms)}`), extra);
}

// ---------------------------------------------------------------- check playground

let catalog = null;
async function actions() {
  if (!catalog) catalog = await (await fetch('/catalog.json')).json();
  return catalog.actions;
}

function viewCheck(main) {
  const p = params();
  const tab = p.get('tab') || 'check';
  const input = (name, label, list) => field(label, h('input', { name, id: 'check-' + name, value: p.get(name) || '', list, autocomplete: 'off' }));
  const out = h('div', { id: 'check-result', 'aria-live': 'polite' });
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, [['check', 'Check'], ['who', 'Who can?'], ['what', 'What can?']].map(([t, label]) =>
    h('button', { type: 'button', role: 'tab', 'aria-selected': String(t === tab), onclick: () => go({ ...Object.fromEntries(params()), view: 'check', tab: t }) }, label)));
  const fields = { check: ['subject', 'org', 'resource', 'action'], who: ['org', 'resource', 'action'], what: ['subject', 'org', 'action'] }[tab];
  const labels = { subject: 'Subject', org: 'Org', resource: 'Resource', action: 'Action' };
  const lists = { subject: 'subjects', org: 'orgs', resource: 'resources', action: 'actions' };
  const form = h('form', { class: 'bar', onsubmit: (ev) => {
    ev.preventDefault();
    const next = { view: 'check', tab };
    for (const f of fields) next[f] = document.getElementById('check-' + f).value;
    go(next);
  } }, fields.map((f) => input(f, labels[f], lists[f])), h('button', { type: 'submit' }, tab === 'check' ? 'Check' : 'Look up'));
  main.replaceChildren(h('h1', {}, 'Check playground'), tabs, form,
    h('datalist', { id: 'subjects' }), h('datalist', { id: 'orgs' }), h('datalist', { id: 'resources' }), h('datalist', { id: 'actions' }),
    h('p', { class: 'muted' }, 'The URL holds the request: copy it to share this question.'), out);
  complete(p.get('org') || '');
  if (!fields.every((f) => p.get(f))) return;
  if (tab === 'check') fill(out, () => explain(p));
  else if (tab === 'who') fill(out, async () => {
    const r = await rpc('AuthzService/LookupSubjects', { org: p.get('org'), resource: p.get('resource'), action: p.get('action'), page_size: 200 });
    return [h('p', {}, `${r.subjects.length} subject(s) may ${p.get('action')} ${p.get('resource')}:`), h('ul', { id: 'who-list' }, r.subjects.map((s) => h('li', {}, s)))];
  });
  else fill(out, async () => {
    const r = await rpc('AuthzService/LookupResources', { subject: p.get('subject'), org: p.get('org'), action: p.get('action'), page_size: 200 });
    return [h('p', {}, `${p.get('subject')} may ${p.get('action')} ${r.resources.length} resource(s):`), h('ul', { id: 'what-list' }, r.resources.map((s) => h('li', {}, s)))];
  });
}

async function complete(org) {
  const put = (id, values) => document.getElementById(id)?.replaceChildren(...values.map((v) => h('option', { value: v })));
  try { put('actions', await actions()); } catch (e) { /* completion is a convenience */ }
  try {
    const o = await rpc('OrgService/ListOrgs', { actor: actor(), user_id: actor(), page_size: 100 });
    put('orgs', o.orgs.map((x) => x.org_id));
  } catch (e) { /* idem */ }
  if (!org) return;
  try {
    const [m, a] = await Promise.all([
      rpc('MemberService/ListMembers', { actor: actor(), org_id: org, page_size: 100 }),
      rpc('AppService/ListApps', { actor: actor(), owner: { org_id: org }, page_size: 100 }),
    ]);
    put('subjects', m.members.map((x) => x.user_id));
    put('resources', ['org', 'members', 'teams', 'billing', 'security', 'audit', 'usage', 'tokens'].concat(a.apps.map((x) => 'apps/' + x.app_id)));
  } catch (e) { /* idem */ }
}

async function explain(p) {
  const r = await rpc('AuthzService/Check', { subject: p.get('subject'), org: p.get('org'), resource: p.get('resource'), action: p.get('action'), explain: true });
  const x = r.explanation || {};
  const parts = [h('p', { class: 'verdict ' + (r.allowed ? 'allow' : 'deny'), id: 'verdict' }, r.allowed ? 'ALLOW' : 'DENY'),
    h('p', {}, `Effect: ${x.effect || '\u2014'} \u00b7 revision ${r.revision} \u00b7 decision ${r.decision_id}`)];
  if (x.rule_file) {
    let source;
    try {
      const files = await policyFiles();
      const name = x.rule_file.split('/').pop();
      const file = files.find((f) => f.name === name);
      source = file ? sourceView(file.text, [x.rule_line], `${name}, decisive rule at line ${x.rule_line}`)
        : h('pre', { class: 'src' }, h('span', { class: 'hl' }, x.rule_text));
    } catch (e) { source = errorBox(e); }
    parts.push(h('h2', {}, 'Decisive rule'), h('p', {}, h('code', { id: 'rule-ref' }, `${x.rule_file}:${x.rule_line}`), ' ', h('code', {}, x.rule_text)), source);
  }
  if (x.role_path) parts.push(h('h2', {}, 'Role path'), h('p', {}, h('code', { id: 'role-path' }, x.role_path)), rolePathGraph(x.role_path));
  if ((x.near_misses || []).length) {
    parts.push(h('h2', {}, 'Near misses'), h('ol', { id: 'near-misses' }, x.near_misses.map((n) => h('li', {},
      h('code', {}, `${n.rule_file}:${n.rule_line}`), ' ', h('code', {}, n.rule_text),
      h('ul', {}, (n.failed || []).map((f) => h('li', {}, 'failed: ', h('code', {}, f))))))));
  }
  return parts;
}

// The role path as nodes and labelled arrows: `a -[x]-> b -> c; grant text` → a ─x→ b → c.
function rolePathGraph(path) {
  const main = path.split(';')[0];
  const nodes = [];
  const edges = [];
  const re = /\s*(-\[([^\]]*)\]->|->)\s*/g;
  let last = 0; let m;
  while ((m = re.exec(main))) { nodes.push(main.slice(last, m.index)); edges.push(m[2] || ''); last = re.lastIndex; }
  nodes.push(main.slice(last));
  const w = 150; const gap = 40;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${nodes.length * (w + gap)} 70`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'Role path: ' + main);
  svg.setAttribute('class', 'graph');
  const el = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); };
  nodes.forEach((n, i) => {
    const x = i * (w + gap) + 4;
    el('rect', { x, y: 25, width: w, height: 30, rx: 6, fill: '#eef3fd', stroke: '#0b57d0' });
    el('text', { x: x + w / 2, y: 45, 'text-anchor': 'middle' }, n.length > 22 ? n.slice(0, 21) + '\u2026' : n);
    if (i < edges.length) {
      el('line', { x1: x + w, y1: 40, x2: x + w + gap - 4, y2: 40, stroke: '#333', 'marker-end': 'url(#arrow)' });
      el('text', { x: x + w + gap / 2, y: 18, 'text-anchor': 'middle', fill: '#555' }, edges[i]);
    }
  });
  const defs = document.createElementNS(ns, 'defs');
  defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker>';
  svg.prepend(defs);
  return svg;
}

// ---------------------------------------------------------------- policy

function highlight(line) {
  const t = line.trim();
  if (t.startsWith('#')) return h('span', { class: 'tok-com' }, line);
  const m = /^(\s*)(p|g\d*|\[[a-z_]+\])(.*)$/.exec(line);
  return m ? h('span', {}, m[1], h('span', { class: 'tok-key' }, m[2]), m[3]) : document.createTextNode(line);
}

let filesCache = null;
async function policyFiles() {
  if (!filesCache) filesCache = (await rpc('AdminService/GetPolicyFiles', {})).files;
  return filesCache;
}

// A file with line numbers, `marked` lines highlighted, scrolled to the first of them.
function sourceView(text, marked, label) {
  const lines = text.split('\n');
  const pre = h('pre', { class: 'src scroll', tabindex: '0', 'aria-label': label },
    lines.map((l, i) => h('span', { class: marked.includes(i + 1) ? 'hl' : null, 'data-line': i + 1 }, `${String(i + 1).padStart(4)} | `, highlight(l), '\n')));
  setTimeout(() => { const hl = pre.querySelector('.hl'); if (hl) pre.scrollTop = hl.offsetTop - pre.offsetTop - 40; }, 0);
  return pre;
}

function viewPolicy(main) {
  const out = h('div', {});
  const files = h('div', { id: 'policy-files' });
  const editor = h('div', { id: 'policy-preview' });
  main.replaceChildren(h('h1', {}, 'Policy'), out, h('h2', {}, 'Files'), files, h('h2', {}, 'Edit preview'), editor);
  let errorLines = {};
  fill(out, async () => {
    const s = await rpc('AdminService/GetPolicyStatus', {});
    for (const m of (s.last_reload_error || '').matchAll(/([^\s:]+):(\d+):/g)) {
      const name = m[1].split('/').pop();
      (errorLines[name] = errorLines[name] || []).push(Number(m[2]));
    }
    loadFiles();
    const err = s.last_reload_error
      ? [h('h2', {}, 'Last reload failed'), h('p', {}, `at ${when(s.last_reload_error_at_unix_ms)}; the previous policy keeps serving.`),
        h('pre', { class: 'src', id: 'reload-error' }, s.last_reload_error.split('\n').map((l) => h('span', { class: 'hl' }, l + '\n')))]
      : [h('p', { class: 'ok' }, 'The latest reload succeeded.')];
    return [table(['Directory', 'Hash', 'Loaded', 'Watcher', 'Reloads'], [[s.policy_dir, h('code', { id: 'policy-hash' }, s.content_hash), when(s.loaded_at_unix_ms),
      `${s.watcher} ${s.watcher_detail || ''}`, `${s.reloads_succeeded} ok, ${s.reloads_failed} failed`]]), ...err,
    h('h2', {}, 'Policy tests'), testsView()];
  });
  const loadFiles = () => fill(files, async () => {
    filesCache = null;
    const list = await policyFiles();
    const csv = list.find((f) => f.name === 'policy.csv');
    previewForm(editor, csv ? csv.text : '');
    return list.map((f) => h('details', { open: f.name === 'policy.csv' || !!errorLines[f.name] }, h('summary', {}, h('code', {}, f.name)), sourceView(f.text, errorLines[f.name] || [], f.name)));
  });
}

// The directory's test suites run against the serving policy (AdminService.RunPolicyTests).
function testsView() {
  const el = h('div', { id: 'policy-tests' });
  fill(el, async () => {
    const r = await rpc('AdminService/RunPolicyTests', {});
    if (r.errors.length) return [h('p', { class: 'err' }, 'The suites did not load:'), h('ul', {}, r.errors.map((e) => h('li', { class: 'err' }, e)))];
    return [h('p', { class: Number(r.failed) ? 'err' : 'ok', id: 'policy-tests-summary' }, `${r.passed} passed, ${r.failed} failed`),
      h('details', {}, h('summary', {}, 'Report'), h('pre', { class: 'src scroll' }, r.report))];
  });
  return el;
}

function previewForm(el, text) {
  const area = h('textarea', { id: 'policy-csv', name: 'policy_csv', rows: 14, class: 'wide', spellcheck: 'false' });
  area.value = text;
  const out = h('div', { id: 'preview-result', 'aria-live': 'polite' });
  el.replaceChildren(h('form', { onsubmit: (ev) => {
    ev.preventDefault();
    fill(out, async () => {
      const r = await rpc('AdminService/PreviewPolicy', { policy_csv: area.value });
      if (r.errors.length) return [h('p', { class: 'err', role: 'alert' }, 'Not valid; nothing compared:'), h('ul', { id: 'preview-errors' }, r.errors.map((e) => h('li', { class: 'err' }, e)))];
      return [h('p', { id: 'preview-summary' }, r.summary), h('p', {}, 'Flips: ', h('strong', { id: 'preview-flips' }, String(Number(r.newly_allowed) + Number(r.newly_denied)))),
        r.groups.length ? h('div', { id: 'preview-groups' }, table(['Role', 'Action', 'Direction', 'Count', 'Examples'], r.groups.map((g) => [g.role, g.action, g.direction, g.count, g.examples.join('; ')]))) : h('p', {}, 'No decision changes.')];
    });
  } }, h('label', { for: 'policy-csv' }, 'policy.csv (edited here only: previewing saves nothing)'), area, h('p', {}, h('button', { type: 'submit' }, 'Preview blast radius'))), out);
}

// ---------------------------------------------------------------- activity

function viewActivity(main) {
  const p = params();
  const inp = (name, label, type) => field(label, h('input', { name, id: 'audit-' + name, type: type || 'text', value: p.get(name) || '' }));
  const out = h('div', { id: 'audit' });
  const form = h('form', { class: 'bar', onsubmit: (ev) => {
    ev.preventDefault();
    const next = { view: 'activity' };
    for (const f of ['org', 'by', 'type', 'since', 'until']) next[f] = document.getElementById('audit-' + f).value;
    go(next);
  } }, inp('org', 'Org'), inp('by', 'Actor'), inp('type', 'Change type'), inp('since', 'Since', 'datetime-local'), inp('until', 'Until', 'datetime-local'), h('button', { type: 'submit' }, 'Filter'));
  const charts = h('div', { class: 'cards', id: 'charts' });
  main.replaceChildren(h('h1', {}, 'Activity'), charts, form, out,
    h('p', { class: 'muted' }, 'The instance-wide log (no org) is an operator call on the Unix socket.'));
  startCharts(charts);
  if (!p.get('org')) { out.replaceChildren(h('p', {}, 'Name an org to see its audit log.')); return; }
  const ms = (v) => (v ? String(Date.parse(v + 'Z')) : '0');
  pager(out, async (token) => {
    const r = await rpc('AuditService/ListAuditEntries', { actor: actor(), org_id: p.get('org'), by: p.get('by') || '', change_type: p.get('type') || '',
      since_unix_ms: ms(p.get('since')), until_unix_ms: ms(p.get('until')), page_size: 50, page_token: token });
    return { items: r.entries, next: r.next_page_token };
  }, (entries) => entries.length ? h('div', { id: 'timeline' }, entries.map((e) => {
    let change = e.change_json;
    try { change = JSON.stringify(JSON.parse(e.change_json), null, 2); } catch (err) { /* shown as stored */ }
    return h('details', {}, h('summary', {}, `#${e.revision} \u00b7 ${when(e.at_unix_ms)} \u00b7 ${e.actor} \u00b7 `, h('strong', {}, e.change_type), e.org_id ? ` \u00b7 ${e.org_id}` : ''), h('pre', {}, change));
  })) : h('p', {}, 'No entries match.'));
}

// Decisions per second and mean check latency over the last minutes, from the daemon's own
// counters (AdminService.GetDecisionCounters): the daemon samples them once a second and keeps
// five minutes, so the first paint already shows the minutes before the page opened; every
// 2 s the page asks for the samples it does not have yet.
let chartTimer = null;
const CHART_KEEP = 300;
function startCharts(el) {
  let samples = [];
  let first = true;
  const rate = h('div', { class: 'card', id: 'chart-rate' });
  const latency = h('div', { class: 'card', id: 'chart-latency' });
  el.replaceChildren(rate, latency);
  const draw = () => {
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const [a, b] = [samples[i - 1], samples[i]];
      const dt = (Number(b.at_unix_ms) - Number(a.at_unix_ms)) / 1000;
      const dn = Number(b.decisions) - Number(a.decisions);
      const timed = Number(b.timed) - Number(a.timed);
      const ns = Number(b.engine_time_ns_sum) - Number(a.engine_time_ns_sum);
      if (dt > 0) points.push([dn / dt, timed > 0 ? ns / timed / 1000 : 0]);
    }
    const span = samples.length > 1 ? (Number(samples[samples.length - 1].at_unix_ms) - Number(samples[0].at_unix_ms)) / 1000 : 0;
    const over = span ? ` over the last ${Math.floor(span / 60)}m ${Math.round(span % 60)}s` : '';
    rate.replaceChildren(spark('Decisions per second' + over, points.map((p) => p[0]), ''));
    latency.replaceChildren(spark('Mean check latency' + over, points.map((p) => p[1]), ' \u00b5s'));
  };
  const tick = async () => {
    try {
      const after = samples.length ? samples[samples.length - 1].at_unix_ms : '0';
      const r = await rpc('AdminService/GetDecisionCounters', { history_after_unix_ms: String(after) });
      samples = samples.concat(r.history || []).slice(-CHART_KEEP);
      if (first && samples.length) {
        // What the first paint drew, for the browser test: samples and decisions in them.
        first = false;
        el.dataset.firstSamples = String(samples.length);
        el.dataset.firstDecisions = String(Number(samples[samples.length - 1].decisions) - Number(samples[0].decisions));
      }
      draw();
    } catch (e) { el.replaceChildren(errorBox(e)); clearInterval(chartTimer); }
  };
  tick();
  chartTimer = setInterval(tick, 2000);
}

function spark(title, values, unit) {
  const last = values.length ? values[values.length - 1] : 0;
  const max = Math.max(1e-9, ...values);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 180 40');
  svg.setAttribute('class', 'graph');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${title}: now ${last.toFixed(1)}${unit}, peak ${max.toFixed(1)}${unit}`);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', '#0b57d0');
  line.setAttribute('stroke-width', '1.5');
  line.setAttribute('points', values.map((v, i) => `${(i * 180) / Math.max(1, values.length - 1)},${38 - (v / max) * 34}`).join(' '));
  svg.append(line);
  return h('div', {}, h('strong', {}, title), h('p', { class: 'muted' }, values.length ? `now ${last.toFixed(1)}${unit} \u00b7 peak ${max.toFixed(1)}${unit}` : 'waiting for a second sample\u2026'), svg);
}

// ---------------------------------------------------------------- shell

const VIEWS = { orgs: viewOrgs, org: viewOrg, check: viewCheck, policy: viewPolicy, activity: viewActivity };

function render() {
  clearInterval(chartTimer);
  const view = params().get('view') || 'orgs';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === view || (view === 'org' && a.dataset.view === 'orgs')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  if (!actor() && view !== 'policy') {
    main.replaceChildren(h('h1', {}, 'Who are you acting as?'), h('p', {}, 'Type a user id in \u201cActing as\u201d above: every read and write is authorized as that user.'));
    document.getElementById('actor').focus();
    return;
  }
  (VIEWS[view] || viewOrgs)(main);
}

document.addEventListener('DOMContentLoaded', () => {
  const actorInput = document.getElementById('actor');
  actorInput.value = actor();
  document.getElementById('who').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem('actor', actorInput.value.trim());
    const token = document.getElementById('token').value;
    if (token) sessionStorage.setItem('token', token);
    render();
  });
  for (const a of document.querySelectorAll('nav a')) {
    a.addEventListener('click', (ev) => { ev.preventDefault(); go({ view: a.dataset.view }); });
  }
  window.addEventListener('popstate', render);
  render();
});
