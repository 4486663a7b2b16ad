// live.js — the controller's server-sent events, read with fetch() so the
// bearer token travels in the Authorization header (EventSource cannot
// send headers, and a token in the URL would end up in logs).
//
// GET /api/v1/events/stream answers text/event-stream; every event has a
// monotonic id.  When the connection drops, the stream is opened again
// with Last-Event-ID = the last id seen, and the controller replays what
// came after it; "event: reset" means it cannot, and the page reloads its
// state from the REST API.

import { token } from './api.js';

export class Live {
	// handlers: { event(type, data, id), reset(), state(name) }
	constructor(handlers) {
		this.h = handlers;
		this.lastId = null;
		this.ctl = null;
		this.stopped = true;
		this.retryMs = 1000;
		this.wakeup = null;
		this.backoff = 0;
		this.stats = { connects: 0, resets: 0, events: 0 };
	}

	start() {
		if (!this.stopped)
			return;
		this.stopped = false;
		this.loop();
	}

	// Try again now (the browser came back online, the tab became visible).
	wake() {
		if (this.wakeup)
			this.wakeup();
	}

	stop() {
		this.stopped = true;
		if (this.ctl)
			this.ctl.abort();
	}

	async loop() {
		while (!this.stopped) {
			const ok = await this.once();
			if (this.stopped)
				break;
			this.h.state('reconnecting');
			// Quick first retry, then back off up to 10 s.
			const wait = ok ? 200 : Math.min(10000, this.retryMs * 2 ** this.backoff);
			this.backoff = Math.min(this.backoff + 1, 4);
			await new Promise((r) => {
				const t = setTimeout(r, wait);
				this.wakeup = () => { clearTimeout(t); r(); };
			});
			this.wakeup = null;
		}
	}

	// One connection; true when it was open for a while (then the next
	// try starts without delay).
	async once() {
		this.ctl = new AbortController();
		const headers = { Authorization: 'Bearer ' + token(),
			Accept: 'text/event-stream' };
		if (this.lastId !== null)
			headers['Last-Event-ID'] = this.lastId;
		let res;
		try {
			res = await fetch('/api/v1/events/stream', { headers,
				cache: 'no-store', signal: this.ctl.signal });
		} catch (e) {
			return false;
		}
		if (!res.ok || !res.body) {
			if (res.status === 401)
				this.h.unauthorized && this.h.unauthorized();
			return false;
		}
		this.stats.connects++;
		this.backoff = 0;
		this.h.state('live');
		const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
		let buf = '';
		let ev = { data: [], type: 'message', id: null };
		try {
			for (;;) {
				const { value, done } = await reader.read();
				if (done)
					break;
				buf += value;
				let nl;
				while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
					const line = buf.slice(0, nl);
					buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
					ev = this.line(line, ev);
				}
			}
		} catch (e) {
			// aborted or the connection broke: reconnect
		}
		return true;
	}

	// The event-stream grammar (HTML Living Standard, "server-sent events").
	line(line, ev) {
		if (line === '') {
			if (ev.data.length > 0 || ev.type === 'reset')
				this.dispatch(ev);
			return { data: [], type: 'message', id: null };
		}
		if (line.startsWith(':'))
			return ev;
		const colon = line.indexOf(':');
		const name = colon < 0 ? line : line.slice(0, colon);
		let value = colon < 0 ? '' : line.slice(colon + 1);
		if (value.startsWith(' '))
			value = value.slice(1);
		if (name === 'data')
			ev.data.push(value);
		else if (name === 'event')
			ev.type = value;
		else if (name === 'id' && !value.includes('\0'))
			ev.id = value;
		else if (name === 'retry' && /^\d+$/.test(value))
			this.retryMs = Math.max(200, Number(value));
		return ev;
	}

	dispatch(ev) {
		if (ev.id !== null)
			this.lastId = ev.id;
		this.stats.events++;
		if (ev.type === 'reset') {
			this.stats.resets++;
			this.h.reset();
			return;
		}
		let data;
		try {
			data = JSON.parse(ev.data.join('\n'));
		} catch (e) {
			return;
		}
		this.h.event(ev.type, data, ev.id);
	}
}
