// Events: the audit log (GET /api/v1/events, then live), with filters.

import { h, clear, time, add } from '../dom.js';
import { state, subscribe, siteName } from '../state.js';

const ACTIONS = ['site.create', 'site.update', 'site.delete', 'site.token',
	'site.rekey', 'link.create', 'link.update', 'link.delete', 'prefix.add',
	'prefix.delete', 'policy.update', 'crypto.update', 'tunnel.rekey',
	'apitoken.create', 'apitoken.delete', 'apitoken.bootstrap'];

function siteOf(ev) {
	const d = ev.detail || {};
	if (d.site_id !== undefined) return Number(d.site_id);
	if (ev.action.startsWith('site.') && d.id !== undefined) return Number(d.id);
	return null;
}

// A short human line for an entry's detail.
export function describe(ev) {
	const d = ev.detail || {};
	const sid = siteOf(ev);
	const parts = [];
	if (sid !== null) parts.push(d.name || (d.request && d.request.name) || siteName(sid));
	else if (d.name) parts.push(d.name);
	if (d.tunnel_id !== undefined) parts.push('tunnel ' + d.tunnel_id);
	if (d.link) parts.push('link ' + d.link);
	if (d.prefix) parts.push(d.prefix);
	return parts.join(' ');
}

export function eventsView(main) {
	const action = h('select', { id: 'ev-action' }, h('option', { value: '' }, 'any'),
		ACTIONS.map((a) => h('option', { value: a }, a)));
	const actor = h('input', { id: 'ev-actor', type: 'search', placeholder: 'token name' });
	const site = h('select', { id: 'ev-site' });
	const text = h('input', { id: 'ev-text', type: 'search', placeholder: 'anything in the entry' });
	const count = h('p', { class: 'muted', id: 'ev-count', 'aria-live': 'polite' });
	const body = h('tbody', { id: 'ev-rows' });
	add(main, h('h1', {}, 'Events'),
		h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter events' },
			h('div', { class: 'field' }, h('label', { for: 'ev-action' }, 'Action'), action),
			h('div', { class: 'field' }, h('label', { for: 'ev-actor' }, 'Actor'), actor),
			h('div', { class: 'field' }, h('label', { for: 'ev-site' }, 'Site'), site),
			h('div', { class: 'field' }, h('label', { for: 'ev-text' }, 'Text'), text)),
		count,
		h('div', { class: 'scroll card' }, h('table', { class: 'list events-table' },
			h('caption', { class: 'sr' }, 'Audit log, newest first'),
			h('thead', {}, h('tr', {}, ['#', 'When', 'Actor', 'Action', 'What', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
			body)));

	function fillSites() {
		const keep = site.value;
		add(clear(site), h('option', { value: '' }, 'any'),
			[...state.sites.values()].sort((a, b) => a.name.localeCompare(b.name))
				.map((s) => h('option', { value: String(s.id) }, s.name)));
		site.value = keep;
	}

	function render() {
		const a = action.value, who = actor.value.trim().toLowerCase();
		const sid = site.value ? Number(site.value) : null;
		const q = text.value.trim().toLowerCase();
		clear(body);
		let n = 0;
		for (let i = state.events.length - 1; i >= 0; i--) {
			const ev = state.events[i];
			if (a && ev.action !== a) continue;
			if (who && !ev.actor.toLowerCase().includes(who)) continue;
			if (sid !== null && siteOf(ev) !== sid) continue;
			const detail = ev.detail ? JSON.stringify(ev.detail) : '';
			if (q && !(ev.action + ' ' + ev.actor + ' ' + detail).toLowerCase().includes(q)) continue;
			n++;
			add(body, h('tr', { dataset: { id: ev.id, action: ev.action } },
				h('td', {}, ev.id), h('td', {}, time(ev.at)), h('td', {}, ev.actor),
				h('td', {}, ev.action), h('td', {}, describe(ev)),
				h('td', { class: 'detail' }, h('code', {}, detail))));
		}
		count.textContent = `${n} of the latest ${state.events.length} entries`;
	}
	for (const c of [action, site])
		c.addEventListener('change', render);
	for (const c of [actor, text])
		c.addEventListener('input', render);
	fillSites();
	render();
	return subscribe((w) => {
		if (w.has('site') || w.has('all')) fillSites();
		if (w.has('audit') || w.has('all') || w.has('site')) render();
	});
}
