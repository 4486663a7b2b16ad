// chart.js — small SVG line charts of a tunnel's RTT, loss and jitter
// over the last hour, from GET /api/v1/tunnels/{id}/health.

import { h, s, add } from './dom.js';
import * as api from './api.js';

const W = 240, H = 64, PAD = 4;

// The health history: one list of samples {at, rtt_us, loss_permille,
// jitter_us} per reporting end, oldest first.  The reply holds one series
// per end with parallel arrays (controller/API.md).
export function seriesOf(reply) {
	const out = [];
	for (const ser of (reply && reply.series) || []) {
		const at = ser.at || [];
		const pick = (k, i) => Array.isArray(ser[k]) && ser[k][i] !== null && ser[k][i] !== undefined ? Number(ser[k][i]) : null;
		const pts = [];
		for (let i = 0; i < at.length; i++)
			pts.push({ at: Number(at[i]), rtt_us: pick('rtt_us', i), loss_permille: pick('loss_permille', i),
				jitter_us: pick('jitter_us', i) });
		out.push({ site: ser.site_id, pts });
	}
	return out;
}

const SERIES = [
	{ key: 'rtt_us', label: 'RTT', unit: 'ms', scale: 1 / 1000 },
	{ key: 'loss_permille', label: 'Loss', unit: '%', scale: 1 / 10 },
	{ key: 'jitter_us', label: 'Jitter', unit: 'ms', scale: 1 / 1000 },
];

function fmt(v) {
	return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function one(series, ends, now, names) {
	const from = now - 3600;
	const lines = ends.map((e) => e.pts.filter((p) => p[series.key] !== null && p.at >= from)
		.map((p) => ({ t: p.at, v: p[series.key] * series.scale })));
	const all = lines.flat();
	const max = Math.max(series.key === 'loss_permille' ? 1 : 0.1, ...all.map((x) => x.v));
	const top = max * 1.15;	// headroom above the highest sample
	const x = (t) => PAD + (W - 2 * PAD) * (t - from) / 3600;
	const y = (v) => H - PAD - (H - 2 * PAD) * v / top;
	const latest = lines.map((l, i) => l.length ? `${names[i]} ${fmt(l[l.length - 1].v)} ${series.unit}` : null).filter(Boolean);
	const title = `${series.label} over the last hour: ` + (all.length ?
		`latest ${latest.join(', ')}; highest ${fmt(max)} ${series.unit}; ${all.length} samples` : 'no samples');
	const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
		'aria-label': title, width: W, height: H },
		s('title', {}, title),
		s('line', { class: 'axis', x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD }),
		s('text', { class: 'chart-max', x: PAD, y: PAD + 9 }, `${fmt(max)} ${series.unit}`));
	lines.forEach((vals, i) => {
		const cls = ['series', series.key, 'end' + i];
		if (vals.length > 1)
			add(svg, s('polyline', { class: cls, points:
				vals.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
		else if (vals.length === 1)
			add(svg, s('circle', { class: cls, cx: x(vals[0].t), cy: y(vals[0].v), r: 2 }));
	});
	return h('figure', { class: 'chart-box', dataset: { series: series.key, samples: all.length } },
		h('figcaption', {}, `${series.label} `, h('strong', {}, latest.length ? latest.join(' · ') : '—')),
		svg);
}

// Three charts for one tunnel (a line per reporting end); fills `into`
// when the reply arrives.  names(site_id) → label of an end.
export async function tunnelCharts(into, tunnelId, names = (id) => 'site ' + id) {
	into.classList.add('charts');
	into.dataset.tunnel = tunnelId;
	add(into, h('p', { class: 'muted' }, 'Loading health…'));
	let ends = [];
	let note = null;
	try {
		ends = seriesOf(await api.get(`/tunnels/${tunnelId}/health`));
	} catch (e) {
		note = e.status === 404 && e.code === 'no_route' ? 'This controller keeps no health history.' : 'Health: ' + e.message;
	}
	into.replaceChildren();
	let newest = 0;
	for (const e of ends)
		for (const p of e.pts) newest = Math.max(newest, p.at);
	const now = Math.max(Date.now() / 1000, newest);
	for (const ser of SERIES)
		add(into, one(ser, ends, now, ends.map((e) => names(e.site))));
	if (note)
		add(into, h('p', { class: 'muted' }, note));
}
