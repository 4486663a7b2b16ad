// ui.js — the toast line and modal dialogs (native <dialog>: focus is
// trapped and Escape closes it, with no script of ours for either).

import { h, add } from './dom.js';

export function toast(msg, kind = 'info') {
	const t = document.getElementById('toast');
	t.textContent = msg;
	t.className = 'toast ' + kind;
	t.hidden = false;
	clearTimeout(toast.timer);
	toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

// dialog(title, body nodes, buttons [{label, class, value}]) → Promise of
// the value of the button pressed ('' for Escape).  The dialog is removed
// from the page afterwards, with everything it showed.
export function dialog(title, body, buttons, id) {
	return new Promise((resolve) => {
		const d = h('dialog', { class: 'dialog', id: id || null, 'aria-labelledby': 'dlg-title' },
			h('form', { method: 'dialog' },
				h('h2', { id: 'dlg-title' }, title), body,
				h('div', { class: 'buttons' }, buttons.map((b) =>
					h('button', { value: b.value, class: b.class || null, id: b.id || null, type: 'submit', disabled: b.disabled }, b.label)))));
		d.addEventListener('close', () => {
			const v = d.returnValue;
			d.remove();
			resolve(v);
		});
		add(document.body, d);
		d.showModal();
	});
}
