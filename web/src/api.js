// The API client: JSON over fetch with the session's bearer token; the session in localStorage.

const KEY = 'reelforge.session';

export function session() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

export function setSession(value) {
  if (value) localStorage.setItem(KEY, JSON.stringify(value));
  else localStorage.removeItem(KEY);
  window.dispatchEvent(new CustomEvent('session'));
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && ((body.error && body.error.message) || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, path, body, { token } = {}) {
  const headers = {};
  const bearer = token ?? session()?.token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!response.ok) {
    if (response.status === 401 && bearer && !token) setSession(null);
    throw new ApiError(response.status, data);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const del = (path) => api('DELETE', path);

// Likes and follows the API does not echo per viewer: remembered on this device.
function remembered(kind) {
  const who = session()?.user?.id || 'anon';
  const key = `reelforge.${kind}.${who}`;
  const read = () => new Set(JSON.parse(localStorage.getItem(key) || '[]'));
  return {
    has: (id) => read().has(id),
    set(id, on) {
      const all = read();
      if (on) all.add(id);
      else all.delete(id);
      localStorage.setItem(key, JSON.stringify([...all]));
    },
  };
}
export const liked = () => remembered('liked');
export const followed = () => remembered('followed');

export function esc(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.classList.add('shown');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('shown'), 2500);
}
