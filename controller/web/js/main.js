// main.js — sign-in, navigation and the live connection.  Views are
// hash routes: #/overview, #/topology, #/site/ID, #/events, #/actions.

import * as api from './api.js';
import { h, clear, add } from './dom.js';
import { toast } from './ui.js';
import { Live } from './live.js';
import { state, loadAll, applyEvent, notify, canWrite } from './state.js';
import { overview } from './views/overview.js';
import { topology } from './views/topology.js';
import { siteView } from './views/site.js';
import { eventsView } from './views/events.js';
import { actionsView } from './views/actions.js';

const main = document.getElementById('main');
let live = null;
let current = null;	// the view's cleanup function

// For tests and people with a console: nothing secret in here.
window.meshwan = { state, get live() { return live; } };

function signInView(message) {
	document.getElementById('nav').hidden = true;
	document.getElementById('who').hidden = true;
	const input = h('input', { id: 'token', type: 'password', autocomplete: 'off',
		spellcheck: 'false', required: true, placeholder: 'mwa_…' });
	const err = h('p', { id: 'signin-error', class: 'error', role: 'alert' }, message || '');
	const btn = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
	const form = h('form', { class: 'signin card', 'aria-labelledby': 'signin-title' },
		h('h1', { id: 'signin-title' }, 'Sign in'),
		h('p', {}, 'Paste an API token (meshwanctl apitoken create NAME --role readonly|operator|admin). ' +
			'It is kept in this tab only, until you sign out or close it.'),
		h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input),
		err, btn);
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const tok = input.value.trim();
		err.textContent = '';
		if (!/^[\x21-\x7e]{1,200}$/.test(tok)) {
			err.textContent = 'That is not an API token.';
			return;
		}
		btn.disabled = true;
		try {
			const role = await api.probeRole(tok);
			api.setToken(tok);
			await start(role);
		} catch (e) {
			btn.disabled = false;
			err.textContent = e.status === 401 ? 'Sign-in failed: the controller does not know this token.' :
				'Sign-in failed: ' + e.message;
			input.focus();
		}
	});
	add(clear(main), form);
	input.focus();
}

async function start(role) {
	state.role = role;
	document.body.dataset.role = role;
	document.getElementById('role').textContent = role;
	for (const a of document.querySelectorAll('[data-write]'))
		a.hidden = !canWrite();
	document.getElementById('nav').hidden = false;
	document.getElementById('who').hidden = false;
	// The stream starts first and its events wait while the lists load:
	// nothing that happens in between is lost.  Applying a queued event
	// after a fresher list can briefly show an older copy of an item, but
	// the event of the later change follows and wins.
	let queue = [];
	const reload = async () => {
		try {
			await loadAll();
		} catch (e) {
			if (e.status === 401)
				return signOut('Your token is no longer valid.');
			toast('Loading failed: ' + e.message, 'error');
		}
		const q = queue;
		queue = null;
		for (const [type, data] of q || [])
			applyEvent(type, data);
	};
	live = new Live({
		event: (type, data) => { if (queue) queue.push([type, data]); else applyEvent(type, data); },
		reset: () => { queue = []; reload(); },
		state: (s) => { state.live = s; setLive(s); notify('live'); },
		unauthorized: () => signOut('Your token is no longer valid.'),
	});
	live.start();
	await reload();
	if (!location.hash || location.hash === '#/' || location.hash === '#/signin')
		location.hash = '#/overview';
	else
		route();
}

function setLive(s) {
	const el = document.getElementById('live');
	el.textContent = s === 'live' ? 'live' : 'reconnecting…';
	el.className = 'live is-' + s;
}

function signOut(message) {
	api.setToken(null);
	if (live)
		live.stop();
	live = null;
	state.role = null;
	if (current) current();
	current = null;
	history.replaceState(null, '', '#/signin');
	signInView(message);
}

function route() {
	if (!state.role)
		return;
	const hash = location.hash.replace(/^#\/?/, '');
	const [name, arg] = hash.split('/');
	if (current)
		current();
	current = null;
	clear(main);
	for (const a of document.querySelectorAll('#nav a'))
		a.setAttribute('aria-current', a.getAttribute('href') === '#/' + name ? 'page' : 'false');
	switch (name) {
	case 'topology': current = topology(main, arg); break;
	case 'site': current = siteView(main, Number(arg)); break;
	case 'events': current = eventsView(main); break;
	case 'actions':
		if (canWrite()) { current = actionsView(main, arg); break; }
		// fall through: read-only tokens have no actions
	default:
		if (name !== 'overview') {
			history.replaceState(null, '', '#/overview');
		}
		current = overview(main);
	}
	const h1 = main.querySelector('h1');
	document.title = 'meshwan — ' + (h1 ? h1.textContent : 'dashboard');
}

window.addEventListener('hashchange', () => {
	route();
	// keyboard and screen-reader users start at the new view
	main.focus({ preventScroll: true });
});
window.addEventListener('online', () => live && live.wake());
document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));

(async function boot() {
	const tok = api.token();
	if (!tok)
		return signInView();
	try {
		await start(await api.probeRole(tok));
	} catch (e) {
		signOut(e.status === 401 ? 'Your token is no longer valid.' : 'Sign-in failed: ' + e.message);
	}
})();
