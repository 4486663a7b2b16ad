// Actions (operator and admin tokens only; the API refuses the rest
// anyway): add a site and show its enrollment token once, edit a site's
// links and prefixes, remove a site, change the topology policy, rekey.

import { h, clear, field, add } from '../dom.js';
import * as api from '../api.js';
import { state, subscribe, isAdmin } from '../state.js';
import { toast, dialog } from '../ui.js';

// "inet 192.0.2.1" or "lte 10.0.0.2 public 198.51.100.7:4501", one a
// line: the edge's own `link` syntax (edge-agent/README.md).
export function parseLinks(text) {
	const out = [];
	for (const [i, raw] of text.split('\n').entries()) {
		const line = raw.trim();
		if (!line) continue;
		const w = line.split(/\s+/);
		if (w.length !== 2 && !(w.length === 4 && w[2] === 'public'))
			throw new Error(`link line ${i + 1}: write "NAME ADDRESS" or "NAME ADDRESS public ADDRESS[:PORT]"`);
		const l = { name: w[0], address: w[1] };
		if (w.length === 4) {
			const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(w[3]) || /^([^:]+)(?::(\d+))?$/.exec(w[3]) || [null, w[3]];
			l.public_address = m[1];
			if (m[2]) l.public_port = Number(m[2]);
		}
		out.push(l);
	}
	return out;
}

export function formatLinks(links) {
	return (links || []).map((l) => `${l.name} ${l.address}` + (l.public_address ?
		` public ${l.public_address.includes(':') ? `[${l.public_address}]` : l.public_address}` +
		(l.public_port ? `:${l.public_port}` : '') : '')).join('\n');
}

function parsePrefixes(text) {
	return text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

function errText(e) {
	return e.message + (e.field ? ` (${e.field})` : '');
}

// The one-time enrollment token, shown in a dialog with the edge's
// configuration; once the dialog is closed the page keeps no copy.
export async function showToken(site, reply) {
	// edge_config: what the controller knows of itself (its gRPC ports,
	// the name in its certificate, its CA pin); the host is the one this
	// page was loaded from, which the operator may need to change.
	const ec = reply.edge_config || {};
	const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
	const conf = [
		`controller = ${host}:${ec.controller_port || 7443}`,
		...(ec.enroll_port && ec.enroll_port !== ec.controller_port ? [`enroll_controller = ${host}:${ec.enroll_port}`] : []),
		...(ec.controller_name ? [`controller_name = ${ec.controller_name}`] : []),
		`ca_pin = ${ec.ca_pin || 'sha256:<the controller CA pin, see below>'}`,
		`token = ${reply.token}`,
		...(site.links || []).map((l) => `link = ${formatLinks([l])}`),
		...(site.lan_prefixes || []).map((p) => `lan_prefix = ${p}`),
	].join('\n');
	const cmd = `cat > /etc/meshwan/edge.conf <<'EOF'\n${conf}\nEOF\nmeshwan-edge -c /etc/meshwan/edge.conf`;
	const expires = reply.expires_at ? new Date(reply.expires_at * 1000).toLocaleString() : 'soon';
	await dialog(`Enrollment token for ${site.name}`, [
		h('p', { class: 'warn-text' }, 'This token is shown once. Copy it now: it enrolls one edge, once, until ' + expires + '.'),
		h('label', { for: 'token-value' }, 'Token'),
		h('input', { id: 'token-value', class: 'mono', readonly: true, value: reply.token }),
		h('label', { for: 'token-cmd' }, 'On the edge'),
		h('textarea', { id: 'token-cmd', class: 'mono', readonly: true, rows: 10 }, cmd),
		h('p', { class: 'muted' }, `The address is the one this page came from (${location.hostname}): change it if edges reach the controller by another. `,
			'ca_pin lets the edge learn the controller\'s CA on first contact and trust nothing else.'),
	], [{ label: 'I have copied it', value: 'ok', class: 'primary', id: 'token-done' }], 'token-dialog');
}

export async function confirmRemove(site, after) {
	const input = h('input', { id: 'confirm-name', autocomplete: 'off' });
	const go = { label: `Remove ${site.name}`, value: 'remove', class: 'danger', id: 'confirm-remove' };
	const p = dialog(`Remove ${site.name}?`, [
		h('p', {}, 'This deletes the site, its links, prefixes, tokens and tunnels. Its edge loses every tunnel. It cannot be undone.'),
		field(`Type ${site.name} to confirm`, input)],
	[{ label: 'Cancel', value: 'cancel', id: 'confirm-cancel' }, go], 'remove-dialog');
	const btn = document.getElementById('confirm-remove');
	btn.disabled = true;
	input.addEventListener('input', () => { btn.disabled = input.value !== site.name; });
	input.focus();
	if (await p !== 'remove')
		return false;
	try {
		await api.del(`/sites/${site.id}`);
		toast(`${site.name} removed.`);
		state.sites.delete(site.id);
		if (after) after();
		return true;
	} catch (e) {
		toast('Removal refused: ' + errText(e), 'error');
		return false;
	}
}

function addSiteForm() {
	const name = h('input', { name: 'name', required: true, pattern: '[a-z0-9-]{1,63}', autocomplete: 'off' });
	const role = h('select', { name: 'role' }, ['spoke', 'hub', 'edge'].map((r) => h('option', { value: r }, r)));
	const region = h('input', { name: 'region', autocomplete: 'off' });
	const asn = h('input', { name: 'asn', inputmode: 'numeric', autocomplete: 'off' });
	const links = h('textarea', { name: 'links', rows: 2, class: 'mono', placeholder: 'inet 192.0.2.10' });
	const prefixes = h('textarea', { name: 'prefixes', rows: 2, class: 'mono', placeholder: '10.10.0.0/24' });
	const err = h('p', { class: 'error', role: 'alert' });
	const form = h('form', { id: 'add-site', class: 'card', 'aria-labelledby': 'add-title' },
		h('h2', { id: 'add-title' }, 'Add a site'),
		h('div', { class: 'grid2' },
			field('Name', name, 'lower-case letters, digits, -'), field('Role', role),
			field('Region', region), field('ASN (optional)', asn, 'private; assigned when empty')),
		field('Links', links, 'one a line: NAME ADDRESS [public ADDRESS[:PORT]]'),
		field('LAN prefixes', prefixes, 'one a line or comma-separated'),
		err, h('button', { type: 'submit', class: 'primary' }, 'Add site'));
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		err.textContent = '';
		let body;
		try {
			body = { name: name.value.trim(), role: role.value, links: parseLinks(links.value),
				lan_prefixes: parsePrefixes(prefixes.value) };
			if (region.value.trim()) body.region = region.value.trim();
			if (asn.value.trim()) body.asn = Number(asn.value.trim());
		} catch (e) {
			err.textContent = e.message;
			return;
		}
		const btn = form.querySelector('button[type=submit]');
		btn.disabled = true;
		try {
			const site = await api.post('/sites', body);
			state.sites.set(site.id, site);
			const tok = await api.post(`/sites/${site.id}/token`);
			form.reset();
			await showToken(site, tok);
			toast(`${site.name} added.`);
		} catch (e) {
			err.textContent = 'Refused: ' + errText(e);
		} finally {
			btn.disabled = false;
		}
	});
	return form;
}

function sitePicker(id, selected) {
	const sel = h('select', { id });
	const fill = () => {
		const keep = sel.value || (selected ? String(selected) : '');
		add(clear(sel), h('option', { value: '' }, 'choose a site'),
			[...state.sites.values()].sort((a, b) => a.name.localeCompare(b.name))
				.map((s) => h('option', { value: String(s.id) }, s.name)));
		sel.value = state.sites.has(Number(keep)) ? keep : '';
	};
	fill();
	sel.refill = fill;
	return sel;
}

function editSiteForm(preselect) {
	const pick = sitePicker('edit-site-pick', preselect);
	const links = h('textarea', { id: 'edit-links', rows: 3, class: 'mono' });
	const prefixes = h('textarea', { id: 'edit-prefixes', rows: 3, class: 'mono' });
	const err = h('p', { class: 'error', role: 'alert' });
	const save = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Save');
	const remove = h('button', { type: 'button', class: 'danger', disabled: true, id: 'remove-site' }, 'Remove site…');
	const token = h('button', { type: 'button', disabled: true, id: 'new-token' }, 'New enrollment token');
	const rekey = h('button', { type: 'button', disabled: true, id: 'rekey-site-action' }, 'Rekey all its tunnels');
	const form = h('form', { id: 'edit-site', class: 'card', 'aria-labelledby': 'edit-title' },
		h('h2', { id: 'edit-title' }, 'Change a site'),
		field('Site', pick),
		field('Links', links, 'one a line: NAME ADDRESS [public ADDRESS[:PORT]]; replaces the whole set'),
		field('LAN prefixes', prefixes, 'one a line or comma-separated'),
		err, h('div', { class: 'buttons' }, save, token, rekey, remove));
	const site = () => state.sites.get(Number(pick.value));
	const load = () => {
		const s = site();
		links.value = s ? formatLinks(s.links) : '';
		prefixes.value = s ? (s.lan_prefixes || []).join('\n') : '';
		for (const b of [save, remove, token, rekey]) b.disabled = !s;
		err.textContent = '';
	};
	pick.addEventListener('change', load);
	load();
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const s = site();
		if (!s) return;
		err.textContent = '';
		save.disabled = true;
		try {
			const want = parseLinks(links.value);
			if (formatLinks(want) !== formatLinks(s.links))
				await api.patch(`/sites/${s.id}`, { links: want });
			const have = new Set(s.lan_prefixes || []);
			const next = new Set(parsePrefixes(prefixes.value));
			for (const p of next)
				if (!have.has(p)) await api.post(`/sites/${s.id}/prefixes`, { prefix: p });
			for (const p of have)
				if (!next.has(p)) await api.del(`/sites/${s.id}/prefixes?prefix=${encodeURIComponent(p)}`);
			const fresh = await api.get(`/sites/${s.id}`);
			state.sites.set(fresh.id, fresh);
			toast(`${fresh.name} saved.`);
			load();
		} catch (e) {
			err.textContent = 'Refused: ' + errText(e);
			const fresh = await api.get(`/sites/${s.id}`).catch(() => null);
			if (fresh) state.sites.set(fresh.id, fresh);
		} finally {
			save.disabled = !site();
		}
	});
	remove.addEventListener('click', () => { if (site()) confirmRemove(site(), () => { pick.refill(); load(); }); });
	token.addEventListener('click', async () => {
		const s = site();
		try {
			await showToken(s, await api.post(`/sites/${s.id}/token`));
		} catch (e) {
			toast('Refused: ' + errText(e), 'error');
		}
	});
	rekey.addEventListener('click', async () => {
		try {
			await api.post(`/sites/${site().id}/rekey`);
			toast('Rekey requested.');
		} catch (e) {
			toast('Rekey refused: ' + errText(e), 'error');
		}
	});
	form.refill = () => { pick.refill(); };
	return form;
}

function policyForm() {
	const p = state.policy || {};
	const admin = isAdmin();
	const mode = h('select', { id: 'policy-mode', disabled: !admin },
		['full-mesh', 'hub-and-spoke', 'regional-mesh'].map((m) => h('option', { value: m, selected: p.mode === m }, m)));
	const pairing = h('select', { id: 'policy-pairing', disabled: !admin },
		['same-colour', 'any', 'list'].map((m) => h('option', { value: m, selected: p.pairing === m }, m)));
	const encap = h('select', { id: 'policy-encap', disabled: !admin },
		['gre', 'vxlan'].map((m) => h('option', { value: m, selected: p.encap === m }, m)));
	const err = h('p', { class: 'error', role: 'alert' });
	const form = h('form', { id: 'policy', class: 'card', 'aria-labelledby': 'policy-title' },
		h('h2', { id: 'policy-title' }, 'Topology policy'),
		admin ? null : h('p', { class: 'muted' }, 'Only admin tokens may change the policy.'),
		h('div', { class: 'grid2' }, field('Mode', mode), field('Pairing', pairing), field('Encapsulation', encap)),
		err, admin ? h('button', { type: 'submit', class: 'primary' }, 'Apply policy') : null);
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		err.textContent = '';
		const body = { mode: mode.value, encap: encap.value };
		if (pairing.value !== 'list') body.pairing = pairing.value;
		const ok = await dialog('Change the topology policy?', [
			h('p', {}, `Every tunnel is recomputed for ${body.mode}; edges get new intents at once.`)],
		[{ label: 'Cancel', value: 'no' }, { label: 'Apply', value: 'yes', class: 'primary', id: 'policy-confirm' }], 'policy-dialog');
		if (ok !== 'yes') return;
		try {
			state.policy = await api.put('/policy', body);
			toast('Policy applied.');
		} catch (e) {
			err.textContent = 'Refused: ' + errText(e);
		}
	});
	return form;
}

function rekeyForm() {
	const tid = h('input', { id: 'rekey-tunnel-id', inputmode: 'numeric', autocomplete: 'off' });
	const err = h('p', { class: 'error', role: 'alert' });
	const form = h('form', { id: 'rekey', class: 'card', 'aria-labelledby': 'rekey-title' },
		h('h2', { id: 'rekey-title' }, 'Rekey a tunnel'),
		h('p', { class: 'muted' }, 'New SA keys for both directions now, make-before-break.'),
		field('Tunnel id', tid), err, h('button', { type: 'submit' }, 'Rekey'));
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		err.textContent = '';
		if (!/^[1-9]\d*$/.test(tid.value.trim())) {
			err.textContent = 'A tunnel id is a number from 1.';
			return;
		}
		try {
			await api.post(`/tunnels/${tid.value.trim()}/rekey`);
			toast(`Rekey of tunnel ${tid.value.trim()} requested.`);
		} catch (e) {
			err.textContent = 'Refused: ' + errText(e);
		}
	});
	return form;
}

export function actionsView(main, arg) {
	const edit = editSiteForm(arg ? Number(arg) : null);
	add(main, h('h1', {}, 'Actions'),
		h('div', { class: 'cols' }, addSiteForm(), edit),
		h('div', { class: 'cols' }, policyForm(), rekeyForm()));
	return subscribe((w) => {
		if ((w.has('site') || w.has('all')) && !edit.contains(document.activeElement))
			edit.refill();
	});
}
