// Topology: every site as a node (hubs as larger squares), grouped by
// region, and every tunnel as a line coloured by its state.  Clicking a
// site or a tunnel (or Enter/Space on a focused site) shows its details.

import { h, s, clear, add } from '../dom.js';
import { state, subscribe, tunnelState, siteName, canWrite } from '../state.js';
import { layout, label, labelWidth } from '../layout.js';
import { tunnelCharts } from '../chart.js';
import { rekeyTunnelButton } from './site.js';

export function siteState(id) {
	const site = state.sites.get(id);
	const e = state.edges.get(id);
	if (!site) return 'unknown';
	if (site.revoked) return 'revoked';
	if (!e || !e.connected) return 'offline';
	return e.converged ? 'converged' : 'converging';
}

function legend() {
	const item = (cls, text, shape) => h('li', {}, s('svg', { width: 18, height: 14, 'aria-hidden': 'true' }, shape), text);
	return h('ul', { class: 'legend', 'aria-label': 'Legend' },
		item('', 'hub', s('rect', { class: 'site hub converged', x: 3, y: 1, width: 12, height: 12, rx: 2 })),
		item('', 'spoke', s('circle', { class: 'site converged', cx: 9, cy: 7, r: 5 })),
		['converged', 'converging', 'offline', 'revoked'].map((k) =>
			item('', k, s('circle', { class: ['site', k], cx: 9, cy: 7, r: 5 }))),
		['up', 'degraded', 'keying', 'down', 'unknown'].map((k) =>
			item('', 'tunnel ' + k, s('line', { class: ['tunnel', k], x1: 1, y1: 7, x2: 17, y2: 7 }))));
}

export function topology(main, arg) {
	const svgBox = h('div', { class: 'topo-canvas', id: 'topo-canvas' });
	const detail = h('aside', { class: 'topo-detail card', id: 'topo-detail', 'aria-live': 'polite', 'aria-label': 'Details' },
		h('p', { class: 'muted' }, 'Select a site or a tunnel to see its details.'));
	const fit = h('button', { type: 'button', 'aria-pressed': 'false', id: 'topo-fit' }, 'Fit to width');
	fit.addEventListener('click', () => {
		const on = svgBox.classList.toggle('fit');
		fit.setAttribute('aria-pressed', String(on));
	});
	const summary = h('p', { class: 'muted', id: 'topo-summary' });
	add(main, h('div', { class: 'view-head' }, h('h1', {}, 'Topology'), fit), summary, legend(),
		h('div', { class: 'topo' }, svgBox, detail));

	let sig = '';
	let svg = null;
	let selected = null;	// {kind: 'site'|'tunnel', id}
	const nodeEls = new Map(), tunnelEls = new Map();

	function build() {
		const sites = [...state.sites.values()];
		const L = layout(sites, Math.max(600, Math.min(1240, svgBox.clientWidth || 900)));
		const t0 = performance.now();
		svg = s('svg', { class: 'topology', id: 'topology', viewBox: `-4 -4 ${L.width + 8} ${L.height + 8}`,
			width: L.width + 8, height: L.height + 8, role: 'group', 'aria-label': 'Network topology' });
		const gRegions = s('g', { class: 'regions' });
		for (const r of L.regions)
			add(gRegions, s('g', { class: 'region', dataset: { region: r.name } },
				s('rect', { x: r.x, y: r.y, width: r.w, height: r.h, rx: 8 }),
				s('text', { class: 'region-name', x: r.x + 10, y: r.y + 18 }, r.name || 'no region')));
		const gTunnels = s('g', { class: 'tunnels' });
		tunnelEls.clear();
		for (const t of state.tunnels.values()) {
			const a = L.nodes.get(t.site_a), b = L.nodes.get(t.site_b);
			if (!a || !b) continue;
			// Two tunnels between the same sites (two links) bend apart.
			const g = s('g', { class: 'tunnel-g', dataset: { tunnel: t.id } },
				s('title', {}, `tunnel ${t.id}: ${siteName(t.site_a)} ${t.link_a} ↔ ${siteName(t.site_b)} ${t.link_b}`));
			const d = path(a, b, t);
			add(g, s('path', { class: 'tunnel-hit', d }), s('path', { class: 'tunnel', d }));
			g.addEventListener('click', () => select({ kind: 'tunnel', id: t.id }));
			add(gTunnels, g);
			tunnelEls.set(t.id, g);
		}
		const gNodes = s('g', { class: 'nodes' });
		nodeEls.clear();
		for (const site of sites) {
			const p = L.nodes.get(site.id);
			const shape = p.hub ?
				s('rect', { class: 'site hub', x: p.x - 11, y: p.y - 11, width: 22, height: 22, rx: 4 }) :
				site.role === 'edge' ? s('rect', { class: 'site edge-role', x: p.x - 6, y: p.y - 6, width: 12, height: 12, transform: `rotate(45 ${p.x} ${p.y})` }) :
				s('circle', { class: 'site', cx: p.x, cy: p.y, r: 7 });
			const g = s('g', { class: ['node', p.hub ? 'hub' : 'spoke'], tabindex: 0, role: 'button',
				dataset: { site: site.id, name: site.name } },
				s('title', {}, `${site.name} (${site.role}, ${site.region || 'no region'})`),
				// what a click hits: the node and its label
				s('rect', { class: 'node-hit', x: p.x - labelWidth(site.name) / 2 - 2, y: p.y - 12,
					width: labelWidth(site.name) + 4, height: p.hub ? 44 : 38 }),
				shape,
				s('text', { class: 'site-label', x: p.x, y: p.y + (p.hub ? 27 : 22) }, label(site.name)));
			g.addEventListener('click', () => select({ kind: 'site', id: site.id }));
			g.addEventListener('keydown', (ev) => {
				if (ev.key === 'Enter' || ev.key === ' ') {
					ev.preventDefault();
					select({ kind: 'site', id: site.id });
				}
			});
			add(gNodes, g);
			nodeEls.set(site.id, g);
		}
		add(svg, gRegions, gTunnels, gNodes);
		const hadFocus = document.activeElement && document.activeElement.closest && document.activeElement.closest('#topology');
		const focusSite = hadFocus ? document.activeElement.dataset.site : null;
		add(clear(svgBox), svg);
		if (focusSite && nodeEls.get(Number(focusSite)))
			nodeEls.get(Number(focusSite)).focus();
		svg.dataset.renderMs = (performance.now() - t0).toFixed(1);
	}

	function path(a, b, t) {
		const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
		// bend by link pair so parallel tunnels stay apart
		const k = (t.link_a + t.link_b).split('').reduce((x, c) => x + c.charCodeAt(0), 0) % 3 - 1;
		const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
		const off = k * 14;
		return `M${a.x},${a.y} Q${mx - dy / len * off},${my + dx / len * off} ${b.x},${b.y}`;
	}

	function paint() {
		for (const [id, g] of nodeEls) {
			const st = siteState(id);
			g.dataset.state = st;
			g.querySelector('.site').setAttribute('class', ['site', g.classList.contains('hub') ? 'hub' : '',
				state.sites.get(id) && state.sites.get(id).role === 'edge' ? 'edge-role' : '', st].filter(Boolean).join(' '));
			g.setAttribute('aria-label', `${state.sites.get(id).name}, ${state.sites.get(id).role}, ${st}`);
			g.classList.toggle('selected', !!selected && selected.kind === 'site' && selected.id === id);
		}
		const c = { up: 0, down: 0, other: 0 };
		for (const [id, g] of tunnelEls) {
			const st = tunnelState(state.tunnels.get(id));
			g.dataset.state = st;
			g.querySelector('.tunnel').setAttribute('class', 'tunnel ' + st);
			g.classList.toggle('selected', !!selected && selected.kind === 'tunnel' && selected.id === id);
			if (st === 'up' || st === 'degraded') c.up++; else if (st === 'down') c.down++; else c.other++;
		}
		summary.textContent = `${nodeEls.size} sites, ${tunnelEls.size} tunnels: ${c.up} up, ${c.down} down, ${c.other} not reported. ` +
			`Policy: ${state.policy ? state.policy.mode : '?'}.`;
	}

	function render() {
		const nsig = [...state.sites.values()].map((x) => `${x.id}:${x.name}:${x.role}:${x.region}`).join('|') +
			'#' + [...state.tunnels.keys()].join(',');
		if (nsig !== sig) {
			sig = nsig;
			build();
		}
		paint();
		if (selected)
			showDetail(false);
	}

	function select(sel) {
		selected = sel;
		paint();
		showDetail(true);
	}

	let detailKey = '';
	function showDetail(fresh) {
		if (selected.kind === 'site' && !state.sites.get(selected.id) ||
		    selected.kind === 'tunnel' && !state.tunnels.get(selected.id)) {
			add(clear(detail), h('p', { class: 'muted' }, 'That item is gone.'));
			return;
		}
		const key = JSON.stringify(selected) + (selected.kind === 'site' ?
			JSON.stringify([state.sites.get(selected.id), state.edges.get(selected.id)]) :
			JSON.stringify(state.tunnels.get(selected.id)) + tunnelState(state.tunnels.get(selected.id)));
		if (!fresh && key === detailKey)
			return;
		detailKey = key;
		clear(detail);
		if (selected.kind === 'site')
			siteDetail(selected.id);
		else
			tunnelDetail(selected.id, fresh);
		if (fresh) {
			detail.querySelector('h2').setAttribute('tabindex', '-1');
			if (window.matchMedia('(max-width: 800px)').matches)
				detail.scrollIntoView({ block: 'nearest' });
		}
	}

	function siteDetail(id) {
		const site = state.sites.get(id), e = state.edges.get(id);
		const st = siteState(id);
		const tl = [...state.tunnels.values()].filter((t) => t.site_a === id || t.site_b === id);
		add(detail, h('h2', { id: 'detail-title' }, site.name),
			h('dl', { class: 'kv' },
				h('dt', {}, 'Role'), h('dd', {}, site.role),
				h('dt', {}, 'Region'), h('dd', {}, site.region || '—'),
				h('dt', {}, 'ASN'), h('dd', {}, site.asn),
				h('dt', {}, 'Edge'), h('dd', {}, h('span', { class: ['badge', st], id: 'detail-state' }, st)),
				h('dt', {}, 'Intent'), h('dd', {}, e ? `applied ${e.applied_version ?? '—'} / desired ${e.intent_version ?? '—'}` : '—'),
				h('dt', {}, 'Prefixes'), h('dd', {}, (site.lan_prefixes || []).join(', ') || '—')),
			h('h3', {}, `Tunnels (${tl.length})`),
			h('ul', { class: 'plain' }, tl.map((t) => {
				const other = t.site_a === id ? t.site_b : t.site_a;
				const ts = tunnelState(t);
				return h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => select({ kind: 'tunnel', id: t.id }) },
					`→ ${siteName(other)}`), ' ', h('span', { class: ['badge', ts] }, ts));
			})),
			h('p', {}, h('a', { href: `#/site/${id}`, class: 'button' }, 'Open site')));
	}

	function tunnelDetail(id) {
		const t = state.tunnels.get(id);
		const ts = tunnelState(t);
		const charts = h('div');
		add(detail, h('h2', { id: 'detail-title' }, `Tunnel ${t.id}`),
			h('dl', { class: 'kv' },
				h('dt', {}, 'State'), h('dd', {}, h('span', { class: ['badge', ts] }, ts)),
				h('dt', {}, 'A'), h('dd', {}, h('a', { href: `#/site/${t.site_a}` }, siteName(t.site_a)), ` ${t.link_a} ${t.address_a}`),
				h('dt', {}, 'B'), h('dd', {}, h('a', { href: `#/site/${t.site_b}` }, siteName(t.site_b)), ` ${t.link_b} ${t.address_b}`),
				h('dt', {}, 'Inner'), h('dd', {}, t.inner),
				h('dt', {}, 'VNI'), h('dd', {}, t.vni ?? '—')),
			charts,
			canWrite() ? rekeyTunnelButton(t.id) : null);
		tunnelCharts(charts, t.id, siteName);
	}

	render();
	if (arg && state.sites.get(Number(arg)))
		select({ kind: 'site', id: Number(arg) });
	const unsub = subscribe(render);
	return unsub;
}
