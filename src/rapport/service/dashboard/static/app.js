// The dashboard: the public API only, as a customer's front end would use it.
// An API key lists the project's sessions and mints a dashboard token per session (browsers
// cannot set headers on a WebSocket); a dashboard token opens its one session directly.
// The credential lives in this module's memory only.

import { esc, renderSession } from "./session.js";

const SILENT_MS = 45000;
let credential = null; // { kind: "key" | "token", value, sessionId? }
let view = null; // the open session's connection state

const $ = (id) => document.getElementById(id);
const say = (text) => { $("message").textContent = text; };

async function api(method, path) {
  const r = await fetch(path, { method, headers: { authorization: `Bearer ${credential.value}` } });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) {
    const why = body && body.error ? body.error.message : `HTTP ${r.status}`;
    const err = new Error(why);
    err.status = r.status;
    throw err;
  }
  return body;
}

function tokenSession(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch { return null; }
}

let nextPage = null;

async function listSessions(after = null) {
  const q = after ? `?after=${encodeURIComponent(after)}&limit=50` : "?limit=50";
  const rows = await api("GET", `/v1/sessions${q}`);
  const tbody = $("session-rows");
  if (!after) tbody.innerHTML = "";
  for (const s of rows) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td><button type="button" class="secondary" data-open="${esc(s.id)}" aria-label="Open session ${esc(s.id)}"><code>${esc(s.id)}</code></button></td>
      <td>${esc(s.status)}</td><td>${esc(s.purpose)}</td><td>${esc(s.reporting)}</td>
      <td>${s.started_at ? `<time datetime="${esc(s.started_at)}">${esc(new Date(s.started_at).toLocaleString())}</time>` : "not started"}</td>`;
    tbody.appendChild(tr);
  }
  nextPage = rows.length === 50 ? rows[rows.length - 1].id : null;
  $("more").hidden = nextPage === null;
  $("sessions").hidden = false;
}

async function signIn(value) {
  value = value.trim();
  credential = value.startsWith("rk_")
    ? { kind: "key", value }
    : { kind: "token", value, sessionId: tokenSession(value) };
  if (credential.kind === "token" && !credential.sessionId) {
    credential = null;
    say("Refused: that is neither an API key (rk_…) nor a dashboard token.");
    return;
  }
  try {
    if (credential.kind === "key") await listSessions();
    else openSession(credential.sessionId);
    say("");
    $("signout").hidden = false;
    $("credential").value = "";
  } catch (e) {
    credential = null;
    say(e.status === 401 ? `Refused: this API key is not valid (${e.message}).` : `Refused: ${e.message}`);
  }
}

function signOut() {
  if (view) view.close();
  view = null;
  credential = null;
  $("sessions").hidden = true;
  $("session").innerHTML = "";
  $("signout").hidden = true;
  say("");
}

// One session's live view: connect, resume after `last seq` on any drop, stop on 1000/4401.
function openSession(id) {
  if (view) view.close();
  const events = [];
  let last = -1;
  let ws = null;
  let closed = false;
  let retry = 0;
  let state = "connecting";
  const root = $("session");
  const draw = () => renderSession(root, events, { state });
  const setState = (s) => { state = s; draw(); };

  async function connect() {
    if (closed) return;
    let token = credential.value;
    if (credential.kind === "key") {
      try {
        token = (await api("POST", `/v1/sessions/${encodeURIComponent(id)}/tokens`)).token;
      } catch (e) {
        if (e.status === 401) return setState("access revoked: the API key is no longer valid");
        if (e.status === 403) return setState("refused: this key may not mint dashboard tokens (it needs the backend scope)");
        if (e.status === 404) return setState("refused: no such session");
        return later();
      }
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = `session=${encodeURIComponent(id)}&token=${encodeURIComponent(token)}&after=${last}`;
    let opened = false;
    ws = new WebSocket(`${proto}//${location.host}/v1/events?${q}`);
    ws.onopen = () => { opened = true; retry = 0; heard = Date.now(); setState("live"); };
    ws.onmessage = (m) => {
      if (closed) return;
      heard = Date.now();
      const e = JSON.parse(m.data);
      if (e.type === "heartbeat") return;
      if (e.type === "stream.reset") { last = Math.max(last, e.from_seq - 1); return; }
      if (typeof e.seq !== "number" || e.seq <= last) return; // never a duplicate
      last = e.seq;
      events.push(e);
      if (e.type === "session.summary") {
        state = "ended";
        if (credential.kind === "key") listSessions().catch(() => {}); // its status changed
      }
      draw();
    };
    ws.onclose = (c) => {
      ws = null;
      if (closed) return;
      if (c.code === 1000 || c.code === 4401) clearInterval(watchdog);
      if (c.code === 1000) return setState(events.some((e) => e.type === "session.summary") ? "ended" : "ended (no summary: the session was interrupted)");
      if (c.code === 4401) return setState("access revoked: the API key behind this view was revoked");
      if (!opened && credential.kind === "token" && retry > 3) return setState("refused: the token is not valid for this session (expired?)");
      later();
    };
  }

  function later() {
    if (closed) return;
    setState("reconnecting…");
    const wait = Math.min(5000, 250 * 2 ** retry++);
    setTimeout(connect, wait);
  }

  // The server sends a heartbeat when idle (every websocket.heartbeat_s, 15 s by default): a
  // connection silent for much longer is dead without having said so; drop it and resume.
  let heard = Date.now();
  const watchdog = setInterval(() => {
    if (ws && ws.readyState === WebSocket.OPEN && Date.now() - heard > SILENT_MS) ws.close(4000, "silent");
  }, 5000);
  view = { close() { closed = true; clearInterval(watchdog); if (ws) ws.close(1000); } };
  draw();
  connect();
}

$("signin").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("credential").value); });
$("signout").addEventListener("click", signOut);
$("more").addEventListener("click", () => listSessions(nextPage).catch((e) => say(e.message)));
$("session-rows").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-open]");
  if (b) openSession(b.dataset.open);
});
