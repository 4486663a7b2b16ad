// Site detail: what the controller knows of one site and what its edge
// last reported — tunnels, BGP, SA epochs and ages (never key bytes) —
// with RTT/loss/jitter charts per tunnel.

import { h, clear, ago, duration, add } from '../dom.js';
import * as api from '../api.js';
import { state, subscribe, tunnelState, siteName, canWrite } from '../state.js';
import { tunnelCharts } from '../chart.js';
import { siteState } from './topology.js';
import { toast } from '../ui.js';
import { confirmRemove } from './actions.js';

export function rekeyTunnelButton(id) {
	const b = h('button', { type: 'button', class: 'write', dataset: { action: 'rekey-tunnel' } }, `Rekey tunnel ${id}`);
	b.addEventListener('click', async () => {
		b.disabled = true;
		try {
			await api.post(`/tunnels/${id}/rekey`);
			toast(`Rekey of tunnel ${id} requested.`);
		} catch (e) {
			toast('Rekey refused: ' + e.message, 'error');
		} finally {
			b.disabled = false;
		}
	});
	return b;
}

export function siteView(main, id) {
	const root = h('div', { id: 'site-view', dataset: { site: id } });
	add(main, root);
	const chartsFor = new Map();	// tunnel id → charts element, kept across renders
	let lastKey = '';

	function render() {
		const site = state.sites.get(id);
		if (!site) {
			add(clear(root), h('h1', {}, 'Site not found'),
				h('p', {}, 'No site has the id ', String(id), '. ', h('a', { href: '#/overview' }, 'Back to the overview')));
			return;
		}
		const e = state.edges.get(id) || {};
		const tl = [...state.tunnels.values()].filter((t) => t.site_a === id || t.site_b === id);
		const key = JSON.stringify([site, e, tl.map((t) => [t, tunnelState(t)])]);
		if (key === lastKey)
			return;
		lastKey = key;
		const st = siteState(id);
		const status = e.connected ? e.status : null;
		const tstat = new Map(((status && status.tunnels) || []).map((t) => [Number(t.tunnel_id), t]));
		const health = new Map(((status && status.health) || []).map((x) => [Number(x.tunnel_id), x]));
		const bgp = (status && status.bgp) || [];
		const version = e.software_version;	// the agent's last hello (GET /edges/{id})

		const focusId = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
		add(clear(root), 
			h('div', { class: 'view-head' }, h('h1', {}, site.name),
				h('span', { class: ['badge', st], id: 'site-state', dataset: { state: st } }, st)),
			h('div', { class: 'cols' },
				h('section', { class: 'card', 'aria-labelledby': 'site-facts' },
					h('h2', { id: 'site-facts' }, 'Site'),
					h('dl', { class: 'kv' },
						h('dt', {}, 'Id'), h('dd', {}, site.id),
						h('dt', {}, 'Role'), h('dd', {}, site.role + (site.internet_breakout ? ' (internet breakout)' : '')),
						h('dt', {}, 'Region'), h('dd', {}, site.region || '—'),
						h('dt', {}, 'ASN'), h('dd', {}, site.asn),
						h('dt', {}, 'Backend'), h('dd', {}, site.backend || 'any'),
						h('dt', {}, 'LAN prefixes'), h('dd', { id: 'site-prefixes' }, (site.lan_prefixes || []).join(', ') || '—'))),
				h('section', { class: 'card', 'aria-labelledby': 'site-edge' },
					h('h2', { id: 'site-edge' }, 'Edge'),
					h('dl', { class: 'kv' },
						h('dt', {}, 'Session'), h('dd', {}, e.connected ? `connected ${ago(e.connected_at)}` : 'not connected'),
						h('dt', {}, 'Agent version'), h('dd', { id: 'site-agent' }, version || '—'),
						h('dt', {}, 'Intent'), h('dd', { id: 'site-intent' }, `applied ${e.applied_version ?? '—'}, desired ${e.intent_version ?? '—'}`,
							e.converged ? ' (converged)' : ''),
						h('dt', {}, 'Last status'), h('dd', {}, e.last_status_at ? ago(e.last_status_at) : '—'),
						h('dt', {}, 'Uptime'), h('dd', {}, status ? duration(status.uptime_seconds) : '—'),
						status && status.last_ack_error ? [h('dt', {}, 'Last error'), h('dd', { class: 'error' }, status.last_ack_error)] : null))),
			h('section', { class: 'card', 'aria-labelledby': 'site-links' },
				h('h2', { id: 'site-links' }, 'Links'),
				h('table', { class: 'list' },
					h('thead', {}, h('tr', {}, ['Name', 'Address', 'Public address', 'Port'].map((x) => h('th', { scope: 'col' }, x)))),
					h('tbody', {}, (site.links || []).map((l) => h('tr', {},
						h('td', {}, l.name), h('td', {}, l.address), h('td', {}, l.public_address || '—'),
						h('td', {}, l.public_port || '—')))))),
			h('section', { class: 'card', 'aria-labelledby': 'site-tunnels' },
				h('h2', { id: 'site-tunnels' }, `Tunnels (${tl.length})`),
				tl.length === 0 ? h('p', { class: 'muted' }, 'No tunnels.') : null,
				h('div', { class: 'tunnel-cards' }, tl.map((t) => tunnelCard(t, tstat.get(t.id), health.get(t.id),
					bgp.filter((b) => Number(b.tunnel_id) === t.id))))),
			bgp.length ? h('section', { class: 'card', 'aria-labelledby': 'site-bgp' },
				h('h2', { id: 'site-bgp' }, 'BGP'),
				h('table', { class: 'list' },
					h('thead', {}, h('tr', {}, ['Neighbour', 'ASN', 'State', 'Up', 'Prefixes', 'Tunnel'].map((x) => h('th', { scope: 'col' }, x)))),
					h('tbody', {}, bgp.map((b) => h('tr', {},
						h('td', {}, b.address), h('td', {}, b.remote_asn),
						h('td', {}, h('span', { class: ['badge', b.state === 'established' ? 'up' : 'down'] }, b.state)),
						h('td', {}, duration(b.uptime_seconds)), h('td', {}, b.prefixes_received), h('td', {}, b.tunnel_id)))))) : null,
			canWrite() ? h('section', { class: 'card write', 'aria-labelledby': 'site-actions' },
				h('h2', { id: 'site-actions' }, 'Actions'),
				h('div', { class: 'buttons' },
					h('a', { class: 'button', href: `#/actions/${id}` }, 'Edit links and prefixes'),
					rekeySiteButton(id),
					h('button', { type: 'button', class: 'danger', dataset: { action: 'remove' },
						onclick: () => confirmRemove(site, () => { location.hash = '#/overview'; }) }, 'Remove site…'))) : null);
		if (focusId && document.getElementById(focusId))
			document.getElementById(focusId).focus();
	}

	function rekeySiteButton(sid) {
		const b = h('button', { type: 'button', id: 'rekey-site', dataset: { action: 'rekey-site' } }, 'Rekey all tunnels');
		b.addEventListener('click', async () => {
			b.disabled = true;
			try {
				await api.post(`/sites/${sid}/rekey`);
				toast('Rekey requested for every tunnel of this site.');
			} catch (e) {
				toast('Rekey refused: ' + e.message, 'error');
			} finally {
				b.disabled = false;
			}
		});
		return b;
	}

	function tunnelCard(t, ts, hl, bgp) {
		const other = t.site_a === id ? t.site_b : t.site_a;
		const mine = t.site_a === id ? t.link_a : t.link_b;
		const theirs = t.site_a === id ? t.link_b : t.link_a;
		const st = tunnelState(t);
		let charts = chartsFor.get(t.id);
		if (!charts) {
			charts = h('div');
			chartsFor.set(t.id, charts);
			tunnelCharts(charts, t.id, siteName);
		}
		const sas = (ts && ts.sas) || [];
		return h('article', { class: 'tunnel-card', dataset: { tunnel: t.id, state: st } },
			h('h3', {}, `Tunnel ${t.id} → `, h('a', { href: `#/site/${other}` }, siteName(other)), ' ',
				h('span', { class: ['badge', st] }, st)),
			h('p', { class: 'muted' }, `${mine} ↔ ${theirs}, inner ${t.inner}` + (t.vni ? `, VNI ${t.vni}` : '')),
			bgp.length ? h('p', {}, 'BGP: ', bgp.map((b) => b.state).join(', ')) : null,
			sas.length ? h('table', { class: 'list sas' },
				h('thead', {}, h('tr', {}, ['Dir', 'SPI', 'SA epoch', 'Age', 'Packets', 'Active'].map((x) => h('th', { scope: 'col' }, x)))),
				h('tbody', {}, sas.map((sa) => h('tr', {},
					h('td', {}, sa.direction), h('td', {}, '0x' + Number(sa.spi).toString(16).padStart(8, '0')),
					h('td', {}, String(sa.epoch)), h('td', {}, duration(sa.age_seconds)),
					h('td', {}, String(sa.packets)), h('td', {}, sa.active ? 'yes' : 'no'))))) :
				h('p', { class: 'muted' }, 'No SA reported.'),
			hl ? h('p', {}, `Now: ${hl.up ? 'up' : 'down'}, RTT ${(hl.rtt_us / 1000).toFixed(1)} ms, loss ${(hl.loss_permille / 10).toFixed(1)} %, jitter ${(hl.jitter_us / 1000).toFixed(1)} ms`) : null,
			charts,
			canWrite() ? rekeyTunnelButton(t.id) : null);
	}

	render();
	return subscribe(render);
}
