// state.js — what the dashboard knows of the network: loaded once from the
// REST API, then kept current by the event stream (live.js).  Views read
// it and subscribe; they never fetch the lists themselves.

import * as api from './api.js';

const RECENT_EVENTS = 500;	// audit entries kept in the page
const DETAIL_PARALLEL = 4;	// GET /edges/{id} in flight at once

export const state = {
	role: null,
	sites: new Map(),	// id → site
	edges: new Map(),	// site_id → edge (+ .status from /edges/{id})
	tunnels: new Map(),	// id → tunnel
	events: [],		// audit entries, oldest first
	policy: null,
	crypto: null,
	live: 'connecting',
	loadedAt: 0,
};

const listeners = new Set();
let notifyQueued = false;

// Views call subscribe(fn) and get fn(what) after changes ('all',
// 'site', 'edge', 'tunnel', 'audit', 'live'), batched per frame.
export function subscribe(fn) {
	listeners.add(fn);
	return () => listeners.delete(fn);
}

const pending = new Set();
export function notify(what) {
	pending.add(what);
	if (notifyQueued)
		return;
	notifyQueued = true;
	queueMicrotask(() => {
		notifyQueued = false;
		const w = new Set(pending);
		pending.clear();
		for (const fn of [...listeners])
			fn(w);
	});
}

// The newest audit entries: /events lists oldest first after an id, so
// find the last id with a few probes (doubling, then bisecting on
// "is there anything after X"), then read the tail.
async function loadRecentEvents() {
	const any = async (after) => (await api.get(`/events?after=${after}&limit=1`)).events.length > 0;
	if (!(await any(0)))
		return [];
	let lo = 0, hi = 1;
	while (await any(hi)) {
		lo = hi;
		hi *= 2;
	}
	// something after lo, nothing after hi
	while (hi - lo > 1) {
		const mid = Math.floor((lo + hi) / 2);
		if (await any(mid)) lo = mid; else hi = mid;
	}
	const start = Math.max(0, hi - RECENT_EVENTS);
	const out = [];
	let after = start;
	for (;;) {
		const r = await api.get(`/events?after=${after}&limit=1000`);
		out.push(...r.events);
		if (r.next_after === null || r.events.length === 0)
			break;
		after = r.next_after;
	}
	return out.slice(-RECENT_EVENTS);
}

export async function loadAll() {
	const [sites, edges, tunnels, policy, crypto, events] = await Promise.all([
		api.get('/sites'), api.get('/edges'), api.get('/tunnels'),
		api.get('/policy'), api.get('/crypto'), loadRecentEvents(),
	]);
	state.sites = new Map(sites.sites.map((x) => [x.id, x]));
	const old = state.edges;
	state.edges = new Map(edges.edges.map((e) => {
		const o = old.get(e.site_id);
		if (o && o.status !== undefined && o.last_status_at === e.last_status_at)
			e.status = o.status;
		return [e.site_id, e];
	}));
	state.tunnels = new Map(tunnels.tunnels.map((t) => [t.id, t]));
	state.policy = policy;
	state.crypto = crypto;
	state.events = events;
	state.loadedAt = Date.now();
	notify('all');
	loadStatuses([...state.edges.values()].filter((e) => e.last_status_at && e.status === undefined).map((e) => e.site_id));
}

// Status reports (tunnel states, BGP, SAs, health) are only in
// GET /edges/{id}; fetch them a few at a time.
const statusWanted = new Set();
let statusRunning = 0;
export function loadStatuses(ids) {
	for (const id of ids)
		statusWanted.add(id);
	while (statusRunning < DETAIL_PARALLEL && statusWanted.size > 0) {
		const id = statusWanted.values().next().value;
		statusWanted.delete(id);
		statusRunning++;
		api.get(`/edges/${id}`).then((e) => {
			state.edges.set(id, e);
			notify('edge');
		}, () => {}).finally(() => {
			statusRunning--;
			loadStatuses([]);
		});
	}
}

function isDeleted(d) {
	return d && (d.deleted === true || d.removed === true || d.gone === true);
}

// One event from the stream; its data is the REST item.
export function applyEvent(type, d) {
	switch (type) {
	case 'site': {
		const id = d.id !== undefined ? d.id : d.site_id;
		if (isDeleted(d)) {
			state.sites.delete(id);
			state.edges.delete(id);
		} else {
			state.sites.set(id, d);
		}
		break;
	}
	case 'edge': {
		const id = d.site_id;
		if (isDeleted(d)) {
			state.edges.delete(id);
			break;
		}
		const o = state.edges.get(id);
		if (d.status === undefined && o && o.status !== undefined) {
			if (o.last_status_at === d.last_status_at)
				d.status = o.status;
			else
				loadStatuses([id]);
		} else if (d.status === undefined && d.last_status_at) {
			loadStatuses([id]);
		}
		state.edges.set(id, d);
		break;
	}
	case 'tunnel':
		if (isDeleted(d))
			state.tunnels.delete(d.id);
		else
			state.tunnels.set(d.id, d);
		break;
	case 'audit':
		if (state.events.length === 0 || state.events[state.events.length - 1].id < d.id) {
			state.events.push(d);
			if (state.events.length > RECENT_EVENTS)
				state.events.splice(0, state.events.length - RECENT_EVENTS);
		}
		break;
	default:
		return;
	}
	notify(type);
}

// --- derived figures -------------------------------------------------

export function siteName(id) {
	const s = state.sites.get(id);
	return s ? s.name : `site ${id}`;
}

// The state one end reports for a tunnel, or undefined.
function endState(siteId, tunnelId) {
	const e = state.edges.get(siteId);
	if (!e || !e.status || !Array.isArray(e.status.tunnels) || !e.connected)
		return undefined;
	const t = e.status.tunnels.find((x) => Number(x.tunnel_id) === tunnelId);
	return t ? t.state : undefined;
}

function endHealth(siteId, tunnelId) {
	const e = state.edges.get(siteId);
	if (!e || !e.status || !Array.isArray(e.status.health))
		return undefined;
	return e.status.health.find((x) => Number(x.tunnel_id) === tunnelId);
}

// up | down | keying | unknown, from what both ends report; health
// (loss or an end saying "not up") makes an up tunnel "degraded".
export function tunnelState(t) {
	const a = endState(t.site_a, t.id), b = endState(t.site_b, t.id);
	if (a === 'down' || a === 'failed' || b === 'down' || b === 'failed')
		return 'down';
	if (a === 'keying' || b === 'keying')
		return 'keying';
	if (a === 'up' || b === 'up') {
		const ha = endHealth(t.site_a, t.id), hb = endHealth(t.site_b, t.id);
		for (const hl of [ha, hb]) {
			if (hl && (hl.up === false || Number(hl.loss_permille) >= 50))
				return 'degraded';
		}
		return 'up';
	}
	return 'unknown';
}

export function counts() {
	const c = { sites: 0, hubs: 0, revoked: 0, connected: 0, converged: 0,
		tunnels: state.tunnels.size, up: 0, down: 0, otherTunnels: 0,
		bgp: 0, bgpTotal: 0, nearRekey: 0 };
	for (const s of state.sites.values()) {
		if (s.revoked) { c.revoked++; continue; }
		c.sites++;
		if (s.role === 'hub') c.hubs++;
	}
	for (const e of state.edges.values()) {
		if (e.revoked) continue;
		if (e.connected) c.connected++;
		if (e.connected && e.converged) c.converged++;
		const st = e.connected ? e.status : null;
		if (!st) continue;
		for (const b of st.bgp || []) {
			c.bgpTotal++;
			if (b.state === 'established') c.bgp++;
		}
		c.nearRekey += nearRekey(st).length;
	}
	for (const t of state.tunnels.values()) {
		const x = tunnelState(t);
		if (x === 'up' || x === 'degraded') c.up++;
		else if (x === 'down') c.down++;
		else c.otherTunnels++;
	}
	return c;
}

// Active SAs older than 80 % of the crypto profile's rekey_seconds.
export function nearRekey(status) {
	const limit = state.crypto ? 0.8 * state.crypto.rekey_seconds : Infinity;
	const out = [];
	for (const t of status.tunnels || [])
		for (const sa of t.sas || [])
			if (sa.active && Number(sa.age_seconds) >= limit)
				out.push({ tunnel: Number(t.tunnel_id), sa });
	return out;
}

export function canWrite() {
	return state.role === 'operator' || state.role === 'admin';
}

export function isAdmin() {
	return state.role === 'admin';
}
