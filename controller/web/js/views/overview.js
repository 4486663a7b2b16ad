// Overview: the figures an operator checks first, and recent events.

import { h, clear, ago, add } from '../dom.js';
import { state, subscribe, counts, siteName } from '../state.js';
import { describe } from './events.js';

function tile(id, label, value, detail, kind) {
	return h('div', { class: ['tile', kind], id },
		h('span', { class: 'tile-value' }, value),
		h('span', { class: 'tile-label' }, label),
		detail ? h('span', { class: 'tile-detail' }, detail) : null);
}

export function overview(main) {
	const figures = h('section', { class: 'tiles', 'aria-label': 'Figures' });
	const recent = h('ol', { class: 'events recent' });
	const sites = h('tbody');
	add(main, h('h1', {}, 'Overview'), figures,
		h('div', { class: 'cols' },
			h('section', { class: 'card', 'aria-labelledby': 'ov-sites' },
				h('h2', { id: 'ov-sites' }, 'Sites'),
				h('div', { class: 'scroll' },
					h('table', { class: 'list', id: 'ov-site-table' },
						h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Site'),
							h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, 'Region'),
							h('th', { scope: 'col' }, 'Edge'))),
						sites))),
			h('section', { class: 'card', 'aria-labelledby': 'ov-events' },
				h('h2', { id: 'ov-events' }, 'Recent events'), recent,
				h('a', { href: '#/events' }, 'All events'))));

	function render() {
		const c = counts();
		add(clear(figures), 
			tile('ov-sites-n', 'sites', c.sites, `${c.hubs} hub${c.hubs === 1 ? '' : 's'}` + (c.revoked ? `, ${c.revoked} revoked` : '')),
			tile('ov-connected', 'edges connected', `${c.connected}/${c.sites}`, null, c.connected < c.sites ? 'warn' : 'good'),
			tile('ov-converged', 'edges converged', `${c.converged}/${c.connected}`, 'applied = newest intent', c.converged < c.connected ? 'warn' : 'good'),
			tile('ov-tunnels', 'tunnels up', `${c.up}/${c.tunnels}`, `${c.down} down` + (c.otherTunnels ? `, ${c.otherTunnels} not reported` : ''), c.down > 0 ? 'bad' : 'good'),
			tile('ov-bgp', 'BGP established', `${c.bgp}/${c.bgpTotal}`, null, c.bgp < c.bgpTotal ? 'warn' : 'good'),
			tile('ov-rekey', 'SAs near rekey', c.nearRekey, state.crypto ? `past 80 % of ${state.crypto.rekey_seconds} s` : null, c.nearRekey > 0 ? 'warn' : ''));
		clear(sites);
		const list = [...state.sites.values()].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
		for (const s of list) {
			const e = state.edges.get(s.id);
			const st = s.revoked ? 'revoked' : !e || !e.connected ? 'offline' : e.converged ? 'converged' : 'converging';
			add(sites, h('tr', { dataset: { site: s.id } },
				h('td', {}, h('a', { href: `#/site/${s.id}` }, s.name)),
				h('td', {}, s.role), h('td', {}, s.region || '—'),
				h('td', {}, h('span', { class: ['badge', st], dataset: { state: st } }, st))));
		}
		clear(recent);
		for (const ev of state.events.slice(-12).reverse())
			add(recent, h('li', {}, h('time', {}, ago(ev.at)), ' ', h('strong', {}, ev.action), ' ',
				describe(ev), h('span', { class: 'actor' }, ' by ' + ev.actor)));
		if (state.events.length === 0)
			add(recent, h('li', {}, 'No events yet.'));
	}
	render();
	return subscribe(render);
}

export { siteName };
