// dom.js — building DOM without innerHTML: text always goes in as text,
// and no style attribute is ever written (the CSP forbids inline style).

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, attrs, kids) {
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === undefined || v === null || v === false)
			continue;
		if (k.startsWith('on') && typeof v === 'function')
			el.addEventListener(k.slice(2), v);
		else if (k === 'class')
			el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
		else if (k === 'dataset')
			Object.assign(el.dataset, v);
		else if (k === 'value' && 'value' in el)
			el.value = v;
		else if (k === 'checked' || k === 'selected' || k === 'disabled')
			el[k] = !!v;
		else
			el.setAttribute(k, v === true ? '' : String(v));
	}
	append(el, kids);
	return el;
}

function append(el, kids) {
	for (const k of kids.flat(Infinity)) {
		if (k === null || k === undefined || k === false)
			continue;
		el.append(k instanceof Node ? k : document.createTextNode(String(k)));
	}
}

export function h(tag, attrs, ...kids) {
	return fill(document.createElement(tag), attrs, kids);
}

export function s(tag, attrs, ...kids) {
	return fill(document.createElementNS(SVG_NS, tag), attrs, kids);
}

export function clear(el) {
	while (el.firstChild)
		el.removeChild(el.firstChild);
	return el;
}

export function ago(unix) {
	if (!unix)
		return '—';
	const d = Math.max(0, Math.round(Date.now() / 1000 - Number(unix)));
	if (d < 60) return d + ' s ago';
	if (d < 3600) return Math.floor(d / 60) + ' min ago';
	if (d < 86400) return Math.floor(d / 3600) + ' h ago';
	return Math.floor(d / 86400) + ' d ago';
}

export function duration(sec) {
	if (sec === undefined || sec === null)
		return '—';
	const d = Number(sec);
	if (d < 120) return d + ' s';
	if (d < 7200) return Math.floor(d / 60) + ' min';
	if (d < 172800) return Math.floor(d / 3600) + ' h';
	return Math.floor(d / 86400) + ' d';
}

export function time(unix) {
	return unix ? new Date(Number(unix) * 1000).toLocaleString() : '—';
}

// A labelled field for forms: <label for> + control, so screen readers
// and keyboard users get the name.
let fieldSeq = 0;
export function field(label, control, hint) {
	const id = control.id || ('f' + (++fieldSeq));
	control.id = id;
	return h('div', { class: 'field' },
		h('label', { for: id }, label), control,
		hint ? h('small', { class: 'hint' }, hint) : null);
}

// el.append() turns null into "null" and arrays into text: this skips
// null/false and flattens arrays.
export function add(el, ...kids) {
	append(el, kids);
	return el;
}
