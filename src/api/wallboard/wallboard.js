// The wallboard: follows GET /api/v1/events (Server-Sent Events) with
// fetch(), so the API token goes in the Authorization header like every
// other client's (an EventSource cannot send headers) and never into a
// URL. Reconnects by itself with Last-Event-ID; the server answers with
// what was missed or a fresh snapshot. No polling, no build step.
"use strict";

const TOKEN_KEY = "zentrale-token";
const STATES = [
  ["available", "Frei"],
  ["offered", "Klingelt"],
  ["talking", "Im Gespräch"],
  ["wrap_up", "Nachbearbeitung"],
  ["paused", "Pause"],
  ["unreachable", "Nicht erreichbar"],
];
const AGENT_STATE = {
  logged_out: "Abgemeldet", available: "Frei", unreachable: "Nicht erreichbar",
  reserved: "Klingelt", ringing: "Klingelt", talking: "Im Gespräch",
  wrap_up: "Nachbearbeitung", paused: "Pause",
};
const CALL_STATE = {
  arriving: "Begrüßung", waiting: "Ansage", queued: "Wartet", forwarding: "Weiterleitung",
  talking: "Im Gespräch", forwarded: "Weitergeleitet", ending: "Endet",
};

const board = {
  queues: new Map(), agents: new Map(), calls: new Map(), overflowed: new Map(),
  lastId: null, token: sessionStorage.getItem(TOKEN_KEY), role: null,
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
};

// Seconds figures age on the page: each item remembers when it came.
const stamp = (item) => Object.assign(item, { _at: performance.now() });
const aged = (item, key) => item[key] == null ? null : item[key] + Math.floor((performance.now() - item._at) / 1000);
const mmss = (s) => s == null ? "–" : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;

function apply(name, data, id) {
  if (id != null) board.lastId = id;
  switch (name) {
    case "snapshot":
      board.queues = new Map(data.queues.map((q) => [q.name, stamp(q)]));
      board.agents = new Map(data.agents.map((a) => [a.id, stamp(a)]));
      board.calls = new Map(data.calls.map((c) => [c.call, stamp(c)]));
      board.overflowed = new Map(data.overflowed.map((o) => [`${o.target}\u0000${o.municipality}`, o]));
      break;
    case "queue": board.queues.set(data.name, stamp(data)); break;
    case "agent": board.agents.set(data.id, stamp(data)); break;
    case "call":
      if (data.kind === "ended" || data.kind === "abandoned") board.calls.delete(data.call);
      else board.calls.set(data.call, stamp(data));
      if (data.kind === "overflowed" && data.overflow) {
        const key = `${data.overflow}\u0000${data.municipality}`;
        const o = board.overflowed.get(key) || { target: data.overflow, municipality: data.municipality, calls: 0 };
        o.calls += 1;
        board.overflowed.set(key, o);
      }
      break;
  }
  scheduleRender();
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function serviceLevel(q) {
  const target = q.service_level_target_percent;
  if (q.service_level_percent == null) return { text: `– in ${q.service_level_threshold_secs} s, Ziel ${target} %`, cls: "" };
  const pct = Math.round(q.service_level_percent);
  return {
    text: `${pct} % in ${q.service_level_threshold_secs} s, Ziel ${target} %`,
    cls: q.service_level_percent < target ? "bad" : "good",
  };
}

function renderQueues() {
  const root = $("queues");
  const cards = [];
  for (const q of board.queues.values()) {
    const longest = aged(q, "longest_wait_secs");
    const waitCls = longest == null ? "" : longest > q.service_level_threshold_secs ? "bad" : "good";
    const sl = serviceLevel(q);
    const free = q.agents.available;
    const overflow = [...board.overflowed.values()].filter((o) => o.target === q.name);
    const origins = q.by_origin.filter((o) => o.entered > 0);
    cards.push(el("article", { class: `queue ${q.waiting > 0 && free === 0 ? "alarm" : ""}`, "data-queue": q.name },
      el("h2", {}, q.name),
      el("div", { class: "big" },
        el("div", { class: `figure waiting ${q.waiting > 0 ? "warn" : ""}` }, el("span", { class: "value", "data-field": "waiting" }, String(q.waiting)), el("span", { class: "label" }, "wartend")),
        el("div", { class: `figure ${waitCls}` }, el("span", { class: "value", "data-field": "longest" }, mmss(longest)), el("span", { class: "label" }, "längste Wartezeit")),
        el("div", { class: `figure ${free === 0 ? "bad" : "good"}` }, el("span", { class: "value", "data-field": "free" }, String(free)), el("span", { class: "label" }, "frei")),
      ),
      el("p", { class: `sl ${sl.cls}`, "data-field": "service-level" }, "Servicelevel heute: ", el("strong", {}, sl.text)),
      el("p", { class: "counters" },
        `angenommen ${q.answered} · aufgelegt ${q.abandoned} · Zeitüberschreitung ${q.timed_out} · im Gespräch ${q.agents.talking} · Pause ${q.agents.paused}`),
      origins.length ? el("p", { class: "origins" }, "Herkunft: " + origins.map((o) => `${o.municipality} (${o.via === "115" ? "115" : "lokal"}) ${o.entered}`).join(" · ")) : "",
      overflow.length ? el("p", { class: "overflow" }, "Überlauf: " + overflow.map((o) => `${o.municipality} ${o.calls}`).join(" · ")) : "",
    ));
  }
  if (!cards.length) cards.push(el("p", { class: "empty" }, "Noch keine Daten – warte auf den Ereignisstrom …"));
  root.replaceChildren(...cards);
}

function agentBucket(a) {
  return a.state === "reserved" || a.state === "ringing" ? "offered" : a.state;
}

function renderTeam() {
  const counts = Object.fromEntries(STATES.map(([k]) => [k, 0]));
  let loggedIn = 0;
  for (const a of board.agents.values()) {
    const b = agentBucket(a);
    if (b in counts) { counts[b] += 1; loggedIn += 1; }
  }
  $("agent-counts").replaceChildren(
    el("div", { class: "count total" }, el("span", { class: "value" }, String(loggedIn)), el("span", { class: "label" }, "angemeldet")),
    ...STATES.map(([k, label]) => el("div", { class: `count state-${k}`, "data-count": k }, el("span", { class: "value" }, String(counts[k])), el("span", { class: "label" }, label))),
  );
  // Tiles only where the config shows names (http.wallboard_agent_names).
  const named = [...board.agents.values()].filter((a) => a.name && a.state !== "logged_out");
  $("agent-tiles").replaceChildren(...named.map((a) =>
    el("div", { class: `tile state-${agentBucket(a)}` }, el("strong", {}, a.name), el("span", {}, `${AGENT_STATE[a.state] || a.state} ${mmss(aged(a, "since_secs"))}`))));
}

function renderSupervisor() {
  const sup = board.role === "supervisor" || board.role === "admin";
  $("supervisor").hidden = !sup;
  if (!sup) return;
  const calls = [...board.calls.values()].sort((a, b) => (aged(b, "waiting_secs") ?? -1) - (aged(a, "waiting_secs") ?? -1));
  $("calls").tBodies[0].replaceChildren(...calls.map((c) => {
    const queue = board.queues.get(c.queue);
    const wait = aged(c, "waiting_secs");
    const late = queue && wait != null && wait > queue.service_level_threshold_secs;
    return el("tr", { "data-call": String(c.call) },
      el("td", {}, c.caller || "unterdrückt"),
      el("td", {}, `${c.municipality} (${c.via === "115" ? "115" : "lokal"})`),
      el("td", {}, c.queue || "–"),
      el("td", {}, (CALL_STATE[c.state] || c.state) + (c.agent ? ` · ${c.agent}` : "")),
      el("td", { class: late ? "bad" : "" }, mmss(wait)),
      el("td", {}, mmss(aged(c, "duration_secs"))));
  }));
  const body = $("agents").tBodies[0];
  // Keep rows (and what is typed into them) while only figures change.
  const rows = new Map([...body.rows].map((r) => [r.dataset.agent, r]));
  const wanted = [];
  for (const a of board.agents.values()) {
    let row = rows.get(a.id);
    if (!row) row = agentRow(a.id);
    row.querySelector(".who").textContent = a.name ? `${a.id} · ${a.name}` : a.id;
    const st = row.querySelector(".state");
    st.textContent = (AGENT_STATE[a.state] || a.state) + (a.pending ? ` (danach ${a.pending.replace("pause:", "Pause ")})` : "");
    st.className = `state state-${agentBucket(a)}`;
    row.dataset.state = a.state;
    row.querySelector(".since").textContent = mmss(aged(a, "since_secs"));
    row.querySelector(".why").textContent = a.reason || "";
    row.querySelector(".today").textContent = `${a.answered_today} Anrufe`;
    wanted.push(row);
  }
  if (wanted.length !== body.rows.length || wanted.some((r, i) => body.rows[i] !== r)) body.replaceChildren(...wanted);
}

function agentRow(id) {
  const reason = el("input", { class: "reason", placeholder: "Grund", size: 10 });
  reason.setAttribute("list", "reasons");
  const button = (cls, label, action) => {
    const b = el("button", { type: "button", class: cls }, label);
    b.addEventListener("click", () => act(id, action, action === "pause" ? reason.value.trim() : null));
    return b;
  };
  return el("tr", { "data-agent": id },
    el("td", { class: "who" }), el("td", { class: "state" }), el("td", { class: "since" }), el("td", { class: "why" }), el("td", { class: "today" }),
    el("td", { class: "actions" }, reason, button("pause", "Pause", "pause"), button("unpause", "Fortsetzen", "unpause"), button("logout", "Abmelden", "logout")));
}

async function act(agent, action, reason) {
  const msg = $("action-message");
  const init = { method: "POST", headers: { Authorization: `Bearer ${board.token}` } };
  if (reason) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify({ reason }); }
  // The answer is the agent as the command left it; the stream may already
  // carry a newer state (an unpaused agent rung at once), so the answer is
  // shown only when no stream event for the agent came in meanwhile.
  const before = board.agents.get(agent);
  try {
    const r = await fetch(`/api/v1/agents/${encodeURIComponent(agent)}/${action}`, init);
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      msg.textContent = `${agent}: ${{ pause: "pausiert", unpause: "fortgesetzt", logout: "abgemeldet" }[action]}`;
      msg.className = "message ok";
      if (body.id && board.agents.get(agent) === before) apply("agent", body);
    } else {
      msg.textContent = `${agent}: ${body.error || r.status}`;
      msg.className = "message error";
      if (r.status === 401) showLogin("Das Token gilt nicht mehr. Bitte neu anmelden.");
    }
  } catch (e) {
    msg.textContent = `${agent}: keine Verbindung (${e.message})`;
    msg.className = "message error";
  }
}

function render() {
  renderQueues();
  renderTeam();
  renderSupervisor();
}

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

// --- the stream ---------------------------------------------------------

let waitingForLogin = false;

async function follow() {
  const headers = { Accept: "text/event-stream" };
  if (board.token) headers.Authorization = `Bearer ${board.token}`;
  if (board.lastId != null) headers["Last-Event-ID"] = String(board.lastId);
  const r = await fetch("/api/v1/events", { headers, cache: "no-store" });
  if (r.status === 401 || r.status === 403) {
    waitingForLogin = true;
    setStatus("auth", "Anmeldung nötig");
    showLogin(r.status === 401 ? "Das Wallboard braucht ein API-Token (Rolle read)." : "Dieses Token darf das Wallboard nicht lesen.");
    return;
  }
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  setStatus("live", "live");
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = null, name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) id = Number(line.slice(4));
        else if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) apply(name, JSON.parse(data), id);
    }
  }
}

async function run() {
  for (;;) {
    try {
      await follow();
    } catch (e) {
      console.warn("event stream:", e);
    }
    if (waitingForLogin) return;
    setStatus("offline", "Verbindung getrennt – verbinde neu …");
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

// --- login --------------------------------------------------------------

function showLogin(why) {
  if (why) $("login-why").textContent = why;
  $("login-message").textContent = "";
  if (!$("login").open) $("login").showModal();
  $("token").focus();
}

async function login(token) {
  const r = await fetch("/api/v1/token", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  if (!r.ok) throw new Error("Token unbekannt.");
  const who = await r.json();
  board.token = token;
  board.role = who.role;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login-open").hidden = true;
  $("logout").hidden = false;
  $("logout").textContent = `Abmelden (${who.name})`;
  document.body.dataset.role = who.role || "";
  scheduleRender();
  if (waitingForLogin) { waitingForLogin = false; run(); }
  return who;
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const who = await login($("token").value.trim());
    $("token").value = "";
    $("login").close();
    if (who.role === "read") $("action-message").textContent = "Angemeldet mit Leserechten: keine Aktionen.";
  } catch (e) {
    $("login-message").textContent = e.message;
  }
});
$("login-cancel").addEventListener("click", () => $("login").close());
$("login-open").addEventListener("click", () => showLogin());
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

// --- large-screen mode --------------------------------------------------

function setLarge(on) {
  document.body.classList.toggle("large", on);
  const url = new URL(location.href);
  if (on) url.searchParams.set("gross", "1"); else url.searchParams.delete("gross");
  history.replaceState(null, "", url);
}
$("large").addEventListener("click", () => setLarge(!document.body.classList.contains("large")));
document.addEventListener("keydown", (e) => {
  if ((e.key === "g" || e.key === "G") && !(e.target instanceof HTMLInputElement)) setLarge(!document.body.classList.contains("large"));
});
if (new URLSearchParams(location.search).get("gross") === "1") setLarge(true);

setInterval(() => {
  $("clock").textContent = new Date().toLocaleTimeString("de-DE");
  scheduleRender();
}, 1000);

(async () => {
  if (board.token) {
    try { await login(board.token); } catch { sessionStorage.removeItem(TOKEN_KEY); board.token = null; }
  }
  run();
})();
