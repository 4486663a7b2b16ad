// dashboard.mjs — the dashboard in headless Chromium (playwright-core)
// against a real controller over HTTPS; started by tests/web/dashboard.sh,
// which passes the controller's address, tokens and paths in the
// environment.  Every wait has a deadline; the first failed check ends the
// run with a message and exit status 1.

import { chromium } from 'playwright-core';
import https from 'node:https';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';

const env = process.env;
const BASE = env.BASE;
const CA = fs.readFileSync(env.CA);
const OUT = env.OUT;
const started = Date.now();
// The topology of 50+ sites is drawn within this (measured 0.15-0.8 s,
// the higher figure with both cores loaded).
const DRAW_MS = 3000;
const children = [];
let browser = null;

function log(...a) {
	console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
}

async function fail(msg) {
	console.error('FAIL: ' + msg);
	for (const c of children) c.kill();
	if (browser) await browser.close().catch(() => {});
	process.exit(1);
}

function check(cond, msg) {
	if (!cond) throw new Error(msg);
}

// The REST API from outside the browser, trusting only the controller CA.
// Its own agent, holding at most a few connections like a browser does:
// the controller allows 64 connections per address (HTTP_MAX_PER_IP_DEFAULT)
// and the browser shares 127.0.0.1 with this script.  Node's global agent
// would open one connection per request in flight (50 for the bulk sites
// below) and keep them all for 5 s, so a browser page opened meanwhile was
// turned away ("Server reached connection limit") and never loaded.
const agent = new https.Agent({ ca: CA, keepAlive: true, maxSockets: 4, maxFreeSockets: 4 });

function rest(method, path, body, token = env.ADMIN, extra = {}) {
	return new Promise((resolve, reject) => {
		const u = new URL(path, BASE);
		const data = body === undefined ? null : JSON.stringify(body);
		const req = https.request(u, { method, agent, headers: {
			Authorization: 'Bearer ' + token,
			...(data ? { 'Content-Type': 'application/json' } : {}), ...extra } }, (res) => {
			let text = '';
			res.setEncoding('utf8');
			res.on('data', (c) => { text += c; });
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
				json: text ? (() => { try { return JSON.parse(text); } catch (e) { return text; } })() : null }));
		});
		req.on('error', reject);
		if (data) req.write(data);
		req.end();
	});
}

// Reads the event stream from Last-Event-ID `after` until pred(event) is
// true for one event, or the deadline passes.
function streamUntil(after, pred, ms) {
	return new Promise((resolve, reject) => {
		const u = new URL('/api/v1/events/stream', BASE);
		let buf = '', ev = { data: '' }, done = false;
		const req = https.get(u, { agent, headers: { Authorization: 'Bearer ' + env.ADMIN,
			Accept: 'text/event-stream', 'Last-Event-ID': String(after) } }, (res) => {
			if (res.statusCode !== 200) { done = true; reject(new Error('stream: HTTP ' + res.statusCode)); return; }
			res.setEncoding('utf8');
			res.on('data', (chunk) => {
				buf += chunk;
				let nl;
				while ((nl = buf.indexOf('\n')) >= 0) {
					const line = buf.slice(0, nl).replace(/\r$/, '');
					buf = buf.slice(nl + 1);
					if (line === '') {
						if (env.DEBUG_STREAM) log("stream", ev.id, ev.event, ev.data.slice(0, 120));
						if (ev.data && !done && pred(ev)) {
							done = true;
							clearTimeout(timer);
							req.destroy();
							resolve(ev);
						}
						ev = { data: '' };
					} else if (line.startsWith('id:')) ev.id = line.slice(3).trim();
					else if (line.startsWith('event:')) ev.event = line.slice(6).trim();
					else if (line.startsWith('data:')) ev.data += line.slice(5).trim();
				}
			});
		});
		const timer = setTimeout(() => { if (!done) { done = true; req.destroy(); reject(new Error('stream: deadline')); } }, ms);
		req.on('error', (e) => { if (!done) { done = true; reject(e); } });
	});
}

function edgeClient(args) {
	const p = spawn(env.EDGE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	p.lines = [];
	p.waiters = [];
	let buf = '';
	p.stdout.setEncoding('utf8');
	p.stdout.on('data', (c) => {
		buf += c;
		let nl;
		while ((nl = buf.indexOf('\n')) >= 0) {
			const line = buf.slice(0, nl);
			buf = buf.slice(nl + 1);
			p.lines.push({ line, at: Date.now() });
			for (const w of [...p.waiters])
				if (w.re.test(line)) { p.waiters.splice(p.waiters.indexOf(w), 1); w.resolve(Date.now()); }
		}
	});
	p.stderr.resume();
	p.waitLine = (re, ms) => new Promise((resolve, reject) => {
		const seen = p.lines.find((l) => re.test(l.line));
		if (seen) return resolve(seen.at);
		p.waiters.push({ re, resolve });
		setTimeout(() => reject(new Error(`edge_client: no line ${re} within ${ms} ms; got: ` +
			p.lines.map((l) => l.line).join(' | '))), ms);
	});
	children.push(p);
	return p;
}

async function signIn(page, token) {
	await page.goto(BASE);
	await page.fill('#token', token);
	await page.click('form.signin button[type=submit]');
	await page.waitForSelector('#ov-sites-n', { timeout: 10000 });
	await page.waitForFunction(() => window.meshwan && window.meshwan.state.live === 'live', null, { timeout: 10000 });
}

async function shot(page, name) {
	await page.evaluate(() => { document.getElementById('toast').hidden = true; });
	await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: name !== 'topology' });
}

async function newPage(viewport = { width: 1280, height: 800 }) {
	// The certificate chains to the controller's CA, which this browser
	// profile does not know; dashboard.sh checked the chain with curl.
	const ctx = await browser.newContext({ viewport, ignoreHTTPSErrors: true });
	// Record CSP violations (an init script is the browser's, not the page's).
	await ctx.addInitScript(() => {
		window.__csp = [];
		document.addEventListener('securitypolicyviolation', (e) =>
			window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
	});
	const page = await ctx.newPage();
	page.csp = [];
	page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) page.csp.push(m.text()); });
	page.on('pageerror', (e) => page.csp.push('page error: ' + e.message));
	return page;
}

async function noCspViolation(page) {
	const v = await page.evaluate(() => window.__csp);
	check(v.length === 0 && page.csp.length === 0, 'CSP violations or page errors: ' + [...v, ...page.csp].join('; '));
}

async function main() {
	browser = await chromium.launch({ executablePath: env.CHROMIUM,
		args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });

	// --- the page and its headers
	const head = await rest('GET', '/');
	check(head.status === 200 && String(head.headers['content-type']).startsWith('text/html'), 'GET / is not the dashboard: ' + head.status);
	const csp = String(head.headers['content-security-policy'] || '');
	check(/script-src 'self'/.test(csp) && !/unsafe-inline|unsafe-eval/.test(csp), 'CSP: ' + csp);
	check(/frame-ancestors 'none'/.test(csp) || /deny/i.test(String(head.headers['x-frame-options'])), 'no frame denial');
	check(head.headers['x-content-type-options'] === 'nosniff', 'no X-Content-Type-Options');
	const html = fs.readFileSync(new URL('../../controller/web/index.html', import.meta.url), 'utf8');
	check(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) && !/\sstyle=|\son\w+=/i.test(html), 'index.html holds inline script or style');

	const page = await newPage();

	// --- sign-in: a bad token fails with a message, the admin token works
	await page.goto(BASE);
	await page.fill('#token', 'mwa_' + '0'.repeat(64));
	await page.click('form.signin button[type=submit]');
	await page.waitForFunction(() => document.querySelector('#signin-error').textContent.length > 0, null, { timeout: 10000 });
	const msg = await page.textContent('#signin-error');
	check(/does not know this token/.test(msg), 'bad token message: ' + msg);
	check(await page.isHidden('#nav'), 'navigation shown after a bad token');
	await shot(page, 'signin');
	await page.fill('#token', env.ADMIN);
	await page.click('form.signin button[type=submit]');
	await page.waitForSelector('#ov-sites-n', { timeout: 10000 });
	check((await page.textContent('#role')) === 'admin', 'role shown is not admin');
	check(!page.url().includes('mwa_'), 'token in the URL');
	await page.waitForFunction(() => window.meshwan.state.live === 'live', null, { timeout: 10000 });
	log('signed in as admin, event stream live');

	// --- add a site in the UI; its token is shown once
	await page.click('#nav a[href="#/actions"]');
	await page.fill('#add-site [name=name]', 'br9');
	await page.selectOption('#add-site [name=role]', 'spoke');
	await page.fill('#add-site [name=region]', 'eu');
	await page.fill('#add-site [name=links]', 'inet 192.0.2.9');
	await page.fill('#add-site [name=prefixes]', '10.9.0.0/24');
	await page.click('#add-site button[type=submit]');
	await page.waitForSelector('#token-dialog[open]', { timeout: 10000 });
	const enrollToken = await page.inputValue('#token-value');
	check(/^mwe_[0-9a-f]+$/.test(enrollToken), 'enrollment token shown: ' + enrollToken);
	const cmd = await page.inputValue('#token-cmd');
	check(cmd.includes('meshwan-edge') && cmd.includes(`token = ${enrollToken}`) && cmd.includes('link = inet 192.0.2.9'),
		'edge command: ' + cmd);
	// the configuration in it is complete: the controller's own ports and
	// CA pin, and meshwan-edge -n accepts it as written
	const conf = cmd.split('\n').filter((l) => / = /.test(l)).join('\n') + '\n';
	const pin = 'sha256:' + crypto.createHash('sha256').update(new crypto.X509Certificate(CA).raw).digest('hex');
	const grpcPort = env.GRPC.split(':').pop(), enrollPort = env.ENROLL.split(':').pop();
	check(conf.includes(`ca_pin = ${pin}\n`) && new RegExp(`^controller = .*:${grpcPort}$`, 'm').test(conf) &&
		(enrollPort === grpcPort || new RegExp(`^enroll_controller = .*:${enrollPort}$`, 'm').test(conf)),
		'edge configuration lacks the CA pin or the ports: ' + conf);
	fs.writeFileSync(`${env.KEYS}/edge.conf`, conf + `state_dir = ${env.KEYS}/edge-state\n`);
	const norm = spawnSync(env.AGENT, ['-n', '-c', `${env.KEYS}/edge.conf`], { encoding: 'utf8' });
	check(norm.status === 0 && norm.stdout.includes(pin.slice(7)), 'meshwan-edge -n refuses the dialog\'s configuration: ' + norm.stdout + norm.stderr);
	await shot(page, 'token');
	await page.click('#token-done');
	await page.waitForSelector('#token-dialog', { state: 'detached', timeout: 5000 });
	check(!(await page.content()).includes(enrollToken), 'the enrollment token is still in the page');
	const sites = await rest('GET', '/api/v1/sites?name=br9');
	check(sites.status === 200 && sites.json.sites.length === 1 && sites.json.sites[0].region === 'eu' &&
		sites.json.sites[0].lan_prefixes[0] === '10.9.0.0/24', 'br9 in GET /api/v1/sites: ' + JSON.stringify(sites.json));
	const br9 = sites.json.sites[0].id;
	await page.click('#nav a[href="#/topology"]');
	await page.waitForSelector(`.node[data-name="br9"]`, { timeout: 8000 });
	check((await page.getAttribute('.node[data-name="br9"]', 'data-state')) === 'offline', 'br9 not offline before its edge');
	check(await page.isVisible('.node.hub[data-name="hq"]'), 'hq is not drawn as a hub');
	log('site added in the UI, in the graph and the API; token shown once');

	// --- the edge enrolls with that token, connects, acks: converged
	// within 2 s, without a reload (the event stream)
	await page.evaluate(() => { window.__sameDocument = true; });
	const en = spawnSync(env.EDGE, ['enroll', env.ENROLL, env.CA, enrollToken, `${env.KEYS}/br9.csr`, `${env.KEYS}/br9.der`], { encoding: 'utf8' });
	check(en.status === 0 && en.stdout.startsWith(`enrolled site=${br9} `), 'enroll: ' + en.stdout + en.stderr);
	const pem = spawnSync('openssl', ['x509', '-inform', 'DER', '-in', `${env.KEYS}/br9.der`, '-out', `${env.KEYS}/br9.crt`]);
	check(pem.status === 0, 'certificate is not DER X.509');
	const edge = edgeClient(['session', env.GRPC, env.CA, `${env.KEYS}/br9.crt`, `${env.KEYS}/br9.key`, String(br9), '-k', '1', '-s', '-H']);
	const ackAt = await edge.waitLine(/^ack v=/, 10000);
	await page.waitForSelector('.node[data-name="br9"][data-state="converged"]', { timeout: Math.max(1, ackAt + 2000 - Date.now()) })
		.catch(() => { throw new Error('br9 not converged in the graph within 2 s of the ack'); });
	const lag = Date.now() - ackAt;
	check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
	log(`edge acked; converged in the UI ${lag} ms later, no reload`);
	await page.click('.node[data-name="br9"]');
	await page.waitForFunction(() => (document.querySelector('#detail-state') || {}).textContent === 'converged', null, { timeout: 5000 });

	// --- the event stream drops; the page resumes and misses no event
	const old = await rest('POST', '/api/v1/sites', { name: 'gap-old', role: 'spoke', region: 'us',
		links: [{ name: 'inet', address: '192.0.2.19' }] });
	check(old.status === 201, 'create gap-old: ' + old.status);
	await page.waitForSelector('.node[data-name="gap-old"]', { timeout: 8000 });
	const before = await page.evaluate(() => ({ id: window.meshwan.live.lastId, connects: window.meshwan.live.stats.connects,
		resets: window.meshwan.live.stats.resets }));
	check(before.id !== null, 'no event id seen');
	await page.context().setOffline(true);
	await page.evaluate(() => window.meshwan.live.ctl.abort());
	await page.waitForFunction(() => window.meshwan.state.live !== 'live', null, { timeout: 5000 });
	const made = [];
	for (const [i, name] of ['gap-a', 'gap-b'].entries()) {
		const r = await rest('POST', '/api/v1/sites', { name, role: 'spoke', region: 'us',
			links: [{ name: 'inet', address: `192.0.2.${20 + i}` }] });
		check(r.status === 201, `create ${name}: ${r.status}`);
		made.push(r.json.id);
	}
	check((await rest('POST', `/api/v1/sites/${br9}/prefixes`, { prefix: '10.9.1.0/24' })).status === 201, 'prefix add');
	check((await rest('DELETE', `/api/v1/sites/${old.json.id}`)).status === 204, 'delete gap-old');
	// Wait until the controller has those changes in its event ring, so the
	// page gets them by replay after Last-Event-ID.
	await streamUntil(before.id, (ev) => ev.event === 'site' && JSON.parse(ev.data).deleted === true &&
		JSON.parse(ev.data).id === old.json.id, 5000);
	await page.context().setOffline(false);
	await page.waitForFunction((n) => window.meshwan.state.live === 'live' && window.meshwan.live.stats.connects > n,
		before.connects, { timeout: 8000 });
	await page.waitForSelector('.node[data-name="gap-b"]', { timeout: 8000 });
	await page.waitForSelector('.node[data-name="gap-old"]', { state: 'detached', timeout: 3000 });
	const all = (await rest('GET', '/api/v1/events?after=0&limit=1000')).json.events.map((e) => e.id);
	await page.waitForFunction((want) => {
		const have = new Set(window.meshwan.state.events.map((e) => e.id));
		return want.every((id) => have.has(id));
	}, all, { timeout: 8000 }).catch(async () => {
		const have = await page.evaluate(() => window.meshwan.state.events.map((e) => e.id));
		throw new Error(`audit events missed after the drop: want ${all.join(',')} have ${have.join(',')}`);
	});
	const prefixes = await page.evaluate((id) => window.meshwan.state.sites.get(id).lan_prefixes, br9);
	check(prefixes.includes('10.9.1.0/24'), 'prefix change missed: ' + prefixes);
	const after = await page.evaluate(() => window.meshwan.live.stats);
	check(after.resets === before.resets, 'the stream was reset instead of resumed');
	check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
	log(`stream dropped and resumed (Last-Event-ID ${before.id}): ${all.length} audit events, none missed`);

	// --- the audit log and its filters
	await page.click('#nav a[href="#/events"]');
	await page.selectOption('#ev-action', 'site.create');
	const actions = await page.$$eval('#ev-rows tr', (rows) => rows.map((r) => r.dataset.action));
	check(actions.length >= 4 && actions.every((a) => a === 'site.create'), 'events filter: ' + actions);
	await page.selectOption('#ev-action', '');
	await shot(page, 'events');

	// --- site detail
	await page.goto(BASE + `#/site/${br9}`);
	await page.waitForSelector('#site-state[data-state="converged"]', { timeout: 8000 });
	const sv = await page.textContent('#site-view');
	check(/10\.9\.0\.0\/24/.test(sv) && /192\.0\.2\.9/.test(sv) && /SA epoch/.test(sv) && /applied \d+, desired \d+/.test(sv),
		'site detail lacks prefixes, links, SA epochs or versions');
	check(!/mwe_|mwa_/.test(sv), 'a token on the site page');
	const agentVer = await page.textContent('#site-agent');
	check(agentVer === 'edge_client test', 'agent version on the site page: ' + agentVer);
	// health: the test edge reports rtt 1042 us, loss 42 permille, jitter
	// 420 us (edge_client -H, uptime 42); the charts show the last hour
	await page.waitForFunction(() => {
		const c = document.querySelector('.tunnel-card .chart-box[data-series="rtt_us"]');
		return c && Number(c.dataset.samples) > 0 && /1\.04 ms/.test(c.textContent);
	}, null, { timeout: 8000 }).catch(() => { throw new Error('no RTT chart with the reported health'); });
	const loss = await page.textContent('.tunnel-card .chart-box[data-series="loss_permille"] figcaption');
	check(/4\.20 %/.test(loss), 'loss chart: ' + loss);
	await shot(page, 'site');

	// --- change the policy in the UI, then 50+ sites in the graph
	await page.click('#nav a[href="#/actions"]');
	await page.selectOption('#policy-mode', 'hub-and-spoke');
	await page.click('#policy button[type=submit]');
	await page.click('#policy-confirm');
	const polDeadline = Date.now() + 3000;
	while ((await rest('GET', '/api/v1/policy')).json.mode !== 'hub-and-spoke') {
		check(Date.now() < polDeadline, 'policy not changed through the UI');
		await new Promise((r) => setTimeout(r, 50));
	}
	const unlabelled = await page.$$eval('main input, main select, main textarea, main button',
		(els) => els.filter((e) => (e.labels ? e.labels.length === 0 : true) && !e.getAttribute('aria-label') &&
			!(e.tagName === 'BUTTON' && e.textContent.trim())).map((e) => e.outerHTML.slice(0, 80)));
	check(unlabelled.length === 0, 'controls without a label: ' + unlabelled.join(' '));
	await shot(page, 'actions');
	const regions = ['eu-west', 'us-east', 'apac', 'latam', 'africa'];
	const posts = [];
	for (let i = 0; i < 50; i++) {
		const region = regions[i % 5];
		posts.push(rest('POST', '/api/v1/sites', { name: `${region}-branch-${Math.floor(i / 5) + 1}`,
			role: i < 5 ? 'hub' : 'spoke', region, links: [{ name: 'inet', address: `198.18.${i}.1` }] }));
	}
	for (const r of await Promise.all(posts))
		check(r.status === 201, 'bulk site: ' + r.status + JSON.stringify(r.json));
	const nSites = (await rest('GET', '/api/v1/sites')).json.sites.length;
	await page.click('#nav a[href="#/overview"]');
	await page.waitForFunction((n) => window.meshwan.state.sites.size === n, nSites, { timeout: 10000 });
	const t0 = Date.now();
	await page.click('#nav a[href="#/topology"]');
	await page.waitForFunction((n) => document.querySelectorAll('#topology .node').length === n, nSites, { timeout: DRAW_MS })
		.catch(() => { throw new Error(`${nSites} sites not drawn within ${DRAW_MS} ms`); });
	const drawMs = Date.now() - t0;
	const geo = await page.evaluate(() => {
		const box = (e) => e.getBoundingClientRect();
		const labels = [...document.querySelectorAll('#topology .site-label')].map((e) => ({ t: e.textContent, r: box(e) }));
		const overlaps = [];
		for (let i = 0; i < labels.length; i++)
			for (let j = i + 1; j < labels.length; j++) {
				const a = labels[i].r, b = labels[j].r;
				if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
					overlaps.push(`${labels[i].t}/${labels[j].t}`);
			}
		const regions = [...document.querySelectorAll('#topology .region rect')].map(box);
		let outside = 0;
		for (const l of labels)
			if (!regions.some((g) => l.r.left >= g.left && l.r.right <= g.right && l.r.top >= g.top && l.r.bottom <= g.bottom))
				outside++;
		return { n: labels.length, overlaps, outside, hubs: document.querySelectorAll('#topology .node.hub').length,
			tunnels: document.querySelectorAll('#topology .tunnel-g').length };
	});
	check(geo.n === nSites && geo.overlaps.length === 0 && geo.outside === 0,
		`labels: ${geo.n} drawn, overlapping ${geo.overlaps.slice(0, 5).join(' ')}, ${geo.outside} outside their region`);
	check(geo.hubs === 6, 'hubs drawn as hubs: ' + geo.hubs);
	log(`${nSites} sites, ${geo.tunnels} tunnels drawn in ${drawMs} ms (limit ${DRAW_MS}), no label overlaps`);
	await page.click('#topology .tunnel-g .tunnel-hit', { force: true });
	await page.waitForFunction(() => /^Tunnel \d+/.test((document.querySelector('#detail-title') || {}).textContent || ''), null, { timeout: 5000 });
	// keyboard: a focused site opens its details with Enter
	await page.focus('.node[data-name="hq"]');
	await page.keyboard.press('Enter');
	await page.waitForFunction(() => (document.querySelector('#detail-title') || {}).textContent === 'hq', null, { timeout: 5000 });
	await shot(page, 'topology');
	await page.click('#nav a[href="#/overview"]');
	await page.waitForSelector('#ov-sites-n');
	await shot(page, 'overview');
	await noCspViolation(page);

	log('views and screenshots done');
	// Done with it: its event stream and connections end here, not with
	// the browser.
	await page.context().close();

	// --- phone width
	const phone = await newPage({ width: 390, height: 844 });
	await signIn(phone, env.ADMIN);
	await shot(phone, 'overview-phone');
	const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
	check(wide <= 390, 'overview scrolls sideways at phone width: ' + wide);
	await phone.goto(BASE + `#/site/${br9}`);
	await phone.waitForSelector('#site-state');
	await shot(phone, 'site-phone');
	await noCspViolation(phone);

	log('phone width done');
	await phone.context().close();

	// --- a read-only token: no write actions, and a forged write is refused
	const ro = await newPage();
	await signIn(ro, env.RO);
	check((await ro.textContent('#role')) === 'readonly', 'role shown is not readonly');
	check(await ro.isHidden('#nav a[href="#/actions"]'), 'Actions shown to a readonly token');
	for (const view of ['#/overview', '#/topology', `#/site/${br9}`, '#/events', '#/actions']) {
		await ro.goto(BASE + view);
		await ro.waitForSelector('main h1', { timeout: 8000 });
		log('readonly on ' + view);
		if (view === '#/topology') {
			await ro.click('.node[data-name="br9"]');
			await ro.waitForSelector('#detail-title');
		}
		const writes = await ro.$$eval('button.write, button.danger, button.primary, button[data-action], form#add-site, form#edit-site, form#policy',
			(els) => els.filter((e) => e.offsetParent !== null).map((e) => (e.id || e.textContent).slice(0, 40)));
		check(writes.length === 0, `write actions shown to readonly on ${view}: ${writes.join(', ')}`);
	}
	check(ro.url().endsWith('#/overview'), '#/actions not turned away for readonly: ' + ro.url());
	const forged = await ro.evaluate(async (tok) => {
		const out = [];
		for (const [m, p, b] of [['POST', '/api/v1/sites', { name: 'evil', role: 'spoke' }],
			['DELETE', '/api/v1/sites/1'], ['POST', '/api/v1/sites/1/rekey'], ['PUT', '/api/v1/policy', { mode: 'full-mesh' }]]) {
			const r = await fetch(p, { method: m, headers: { Authorization: 'Bearer ' + tok, 'Content-Type': 'application/json' },
				body: b ? JSON.stringify(b) : undefined });
			out.push(`${m} ${p} ${r.status} ${(await r.json()).code}`);
		}
		return out;
	}, env.RO);
	check(forged.every((x) => / 403 forbidden$/.test(x)), 'forged writes: ' + forged.join('; '));
	check((await rest('GET', '/api/v1/sites?name=evil')).json.sites.length === 0, 'a forged write changed something');
	await noCspViolation(ro);
	log('readonly: no write actions; forged writes refused: ' + forged.join('; '));

	// --- sign out forgets the token
	await ro.click('#signout');
	await ro.waitForSelector('#token');
	check(await ro.evaluate(() => sessionStorage.length === 0), 'token kept after sign-out');

	for (const c of children) c.kill();
	await browser.close();
	agent.destroy();
	log('PASS');
}

const guard = setTimeout(() => fail('took over 90 s'), 90000);
main().then(() => { clearTimeout(guard); }, (e) => fail(e.message));
