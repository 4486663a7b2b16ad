// layout.js — where each site goes in the topology picture.
//
// Sites are grouped by region; each region is a box with its hubs in a
// row at the top and the other sites in a grid below.  Every cell is at
// least as wide as the widest label of its row kind plus a gap, and rows
// are further apart than a label is tall, so no two labels can overlap
// whatever the names; region boxes never overlap either.  Labels are
// set in a monospace font at 12 px (CHAR_W per character) and cut to
// LABEL_MAX characters, so their width is known before anything is drawn.

export const CHAR_W = 7.3;	// upper bound of a 12 px monospace glyph
export const LABEL_MAX = 24;
const GAP = 14, SPOKE_H = 58, HUB_H = 74, PAD = 16, TITLE = 26, REGION_GAP = 24;

export function label(name) {
	return name.length > LABEL_MAX ? name.slice(0, LABEL_MAX - 1) + '…' : name;
}

export function labelWidth(name) {
	return label(name).length * CHAR_W;
}

// sites: [{id, name, role, region}] → {width, height, nodes: Map(id →
// {x, y, hub}), regions: [{name, x, y, w, h}]}
export function layout(sites, maxWidth = 1240) {
	const groups = new Map();
	for (const s of sites) {
		const r = s.region || '';
		if (!groups.has(r)) groups.set(r, []);
		groups.get(r).push(s);
	}
	const names = [...groups.keys()].sort((a, b) => (a === '') - (b === '') || a.localeCompare(b));
	const boxes = [];
	for (const name of names) {
		const list = groups.get(name).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }) || a.id - b.id);
		const hubs = list.filter((s) => s.role === 'hub');
		const rest = list.filter((s) => s.role !== 'hub');
		const hubW = Math.max(64, ...hubs.map((s) => labelWidth(s.name) + GAP));
		const cellW = Math.max(56, ...rest.map((s) => labelWidth(s.name) + GAP));
		// a grid about as wide as it is tall on screen
		let cols = Math.max(1, Math.ceil(Math.sqrt(rest.length * SPOKE_H / cellW * 1.6)));
		cols = Math.min(cols, rest.length || 1, Math.max(1, Math.floor((maxWidth - 2 * PAD) / cellW)));
		const rows = Math.ceil(rest.length / cols);
		const hubCols = Math.max(1, Math.min(hubs.length, Math.floor((maxWidth - 2 * PAD) / hubW)));
		const hubRows = Math.ceil(hubs.length / hubCols);
		const innerW = Math.max(hubs.length ? hubCols * hubW : 0, rest.length ? cols * cellW : 0, labelWidth(name || 'no region') + 8);
		const w = innerW + 2 * PAD;
		const hh = hubRows * HUB_H;
		const h = TITLE + hh + rows * SPOKE_H + PAD;
		const pos = [];
		const hubOff = (innerW - Math.min(hubs.length, hubCols) * hubW) / 2;
		hubs.forEach((s, i) => pos.push({ s, hub: true,
			x: PAD + hubOff + (i % hubCols + 0.5) * hubW,
			y: TITLE + Math.floor(i / hubCols) * HUB_H + 24 }));
		const restOff = (innerW - Math.min(rest.length, cols) * cellW) / 2;
		rest.forEach((s, i) => pos.push({ s, hub: false,
			x: PAD + restOff + (i % cols + 0.5) * cellW,
			y: TITLE + hh + Math.floor(i / cols) * SPOKE_H + 18 }));
		boxes.push({ name, w, h, pos });
	}
	// Shelf packing: boxes left to right, a new shelf when the row is full.
	const regions = [];
	const nodes = new Map();
	let x = 0, y = 0, shelfH = 0, width = 0;
	for (const b of boxes) {
		if (x > 0 && x + b.w > maxWidth) {
			x = 0;
			y += shelfH + REGION_GAP;
			shelfH = 0;
		}
		regions.push({ name: b.name, x, y, w: b.w, h: b.h });
		for (const p of b.pos)
			nodes.set(p.s.id, { x: x + p.x, y: y + p.y, hub: p.hub });
		x += b.w + REGION_GAP;
		width = Math.max(width, x - REGION_GAP);
		shelfH = Math.max(shelfH, b.h);
	}
	return { width: Math.max(width, 1), height: Math.max(y + shelfH, 1), nodes, regions };
}
