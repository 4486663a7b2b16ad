// api.js — the dashboard's only way to the controller: the public REST
// API (controller/API.md) with the bearer token of this browser tab.
// Errors come back as ApiError carrying the API's {code, message, field}.

const TOKEN_KEY = 'meshwan.token';

export class ApiError extends Error {
	constructor(status, body) {
		super(body && body.message ? body.message : `HTTP ${status}`);
		this.status = status;
		this.code = body && body.code ? body.code : 'http_' + status;
		this.field = body ? body.field : null;
	}
}

export function token() {
	return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
	if (t)
		sessionStorage.setItem(TOKEN_KEY, t);
	else
		sessionStorage.removeItem(TOKEN_KEY);
}

// request('GET', '/sites') → parsed JSON (null for 204).  The token never
// goes into a URL: only into the Authorization header.
export async function request(method, path, body, tok = token()) {
	const headers = { Authorization: 'Bearer ' + tok };
	const init = { method, headers, cache: 'no-store' };
	if (body !== undefined) {
		headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(body);
	}
	let res;
	try {
		res = await fetch('/api/v1' + path, init);
	} catch (e) {
		throw new ApiError(0, { code: 'unreachable',
			message: 'the controller could not be reached' });
	}
	if (res.status === 204)
		return null;
	let data = null;
	const text = await res.text();
	if (text) {
		try {
			data = JSON.parse(text);
		} catch (e) {
			data = null;
		}
	}
	if (!res.ok)
		throw new ApiError(res.status, data);
	return data;
}

export const get = (p) => request('GET', p);
export const post = (p, b) => request('POST', p, b);
export const patch = (p, b) => request('PATCH', p, b);
export const put = (p, b) => request('PUT', p, b);
export const del = (p) => request('DELETE', p);

// The role of a token, found with requests that change nothing: the API
// has no "who am I" route.  GET /tokens needs admin; POST
// /sites/0/rekey is refused with 403 for a readonly token and with
// 400 invalid (id 0 is never canonical) once the role check passed.
// The API checks the role before anything else (controller/api.c).
export async function probeRole(tok) {
	await request('GET', '/sites?name=-', undefined, tok);	// 401 → throws
	try {
		await request('GET', '/tokens', undefined, tok);
		return 'admin';
	} catch (e) {
		if (e.status !== 403)
			throw e;
	}
	try {
		await request('POST', '/sites/0/rekey', undefined, tok);
	} catch (e) {
		if (e.status === 403)
			return 'readonly';
		if (e.status === 400)
			return 'operator';
		throw e;
	}
	return 'operator';
}
