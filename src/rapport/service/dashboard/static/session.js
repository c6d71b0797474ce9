// Renders one session from its list of events (the envelopes of GET /v1/events or of an
// events JSONL file, in seq order). The dashboard calls it on every event; the report calls it
// once with every event inlined. No dependency: charts are inline SVG.

const NS = "http://www.w3.org/2000/svg";

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fmt(v, signed = false) {
  if (v === null || v === undefined) return "–";
  const s = Number(v).toFixed(2);
  return signed && v > 0 ? "+" + s : s;
}

const secs = (t) => `${Number(t).toFixed(1)} s`;

// One value with its raw number kept in data-value (what tests and scrapers compare).
function num(field, v, signed = false, label = "") {
  const raw = v === null || v === undefined ? "" : String(v);
  const title = label ? ` aria-label="${esc(label)}: ${esc(fmt(v, signed))}"` : "";
  return `<span data-field="${field}" data-value="${esc(raw)}"${title}>${fmt(v, signed)}</span>`;
}

// The session's state, folded from its events: windows (engagement + turns of one media
// range), shifts, gaps (session.resumed), revocations, the summary, the last models/notice.
export function fold(events) {
  const s = {
    started: null, windows: [], shifts: [], gaps: [], revoked: [], synchrony: [], summary: null,
    models: {}, notice: "", sessionId: "", lastSeq: -1,
  };
  const byStart = new Map();
  for (const e of events) {
    if (!e || typeof e.seq !== "number") continue;
    s.sessionId = e.session_id;
    s.lastSeq = Math.max(s.lastSeq, e.seq);
    if (e.models) s.models = e.models;
    if (e.notice) s.notice = e.notice;
    const key = e.media_time ? e.media_time.start.toFixed(3) : "";
    if (e.type === "session.started") s.started = e;
    else if (e.type === "engagement.window" || e.type === "turns.window") {
      let w = byStart.get(key);
      if (!w) {
        w = { start: e.media_time.start, end: e.media_time.end, seq: e.seq };
        byStart.set(key, w);
        s.windows.push(w);
      }
      if (e.type === "engagement.window") { w.engagement = e; w.seq = e.seq; } else w.turns = e;
    } else if (e.type === "sentiment.shift") s.shifts.push(e);
    else if (e.type === "session.resumed") s.gaps.push(e);
    else if (e.type === "consent.revoked") s.revoked.push(e);
    else if (e.type === "synchrony.window") s.synchrony.push(e);
    else if (e.type === "session.summary") s.summary = e;
  }
  s.windows.sort((a, b) => a.start - b.start);
  const level = s.started ? s.started.data.reporting : null;
  s.perPerson = level === "participant";
  s.end = Math.max(
    s.windows.length ? s.windows[s.windows.length - 1].end : 0,
    s.summary ? s.summary.data.duration_s : 0,
    ...s.gaps.map((g) => g.data.gap.end), ...s.synchrony.map((e) => e.media_time.end), 1);
  return s;
}

// A small line chart: series of [t, v] (null v breaks the line), y in [lo, hi], shaded gaps,
// vertical marks. Width follows its container (viewBox); text stays readable.
export function lineChart({ title, series, lo, hi, xmax, gaps = [], marks = [], trend = null }) {
  const W = 640, H = 160, L = 36, R = 18, T = 10, B = 22;
  const x = (t) => L + (t / xmax) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const parts = [];
  parts.push(`<title>${esc(title)}</title>`);
  for (const g of gaps) {
    parts.push(`<rect class="gap" x="${x(g[0]).toFixed(1)}" y="${T}" width="${Math.max(2, x(g[1]) - x(g[0])).toFixed(1)}" height="${H - T - B}"><title>gap: ${esc(secs(g[0]))} to ${esc(secs(g[1]))} not analysed</title></rect>`);
  }
  for (const v of [lo, (lo + hi) / 2, hi]) {
    parts.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>`);
    parts.push(`<text class="axis" x="${L - 4}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  const step = xmax > 300 ? 60 : xmax > 60 ? 15 : 5;
  for (let t = 0; t <= xmax; t += step) {
    parts.push(`<text class="axis" x="${x(t)}" y="${H - 6}" text-anchor="middle">${t}s</text>`);
  }
  for (const m of marks) {
    parts.push(`<line class="mark ${m.cls}" x1="${x(m.t)}" x2="${x(m.t)}" y1="${T}" y2="${H - B}"><title>${esc(m.label)}</title></line>`);
  }
  for (const s of series) {
    let d = "";
    let pen = false;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    parts.push(`<path class="line ${s.cls}" d="${d}"/>`);
    for (const [t, v] of s.points) {
      if (v !== null && v !== undefined) parts.push(`<circle class="dot ${s.cls}" cx="${x(t).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5"/>`);
    }
  }
  if (trend) {
    parts.push(`<path class="trend" d="M${x(trend[0][0]).toFixed(1)},${y(trend[0][1]).toFixed(1)}L${x(trend[1][0]).toFixed(1)},${y(trend[1][1]).toFixed(1)}"><title>trend</title></path>`);
  }
  return `<svg xmlns="${NS}" class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">${parts.join("")}</svg>`;
}

function room(w) { return w.engagement ? w.engagement.data.room : null; }
function mid(w) { return (w.start + w.end) / 2; }

function trendLine(s) {
  const ws = s.windows.filter((w) => room(w) && room(w).engagement !== null);
  if (!ws.length) return null;
  const last = ws[ws.length - 1];
  const r = room(last);
  if (r.trend === null || r.trend === undefined) return null;
  const from = ws[Math.max(0, ws.length - 6)];
  const t0 = mid(from), t1 = mid(last);
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [[t0, clamp(r.engagement + (r.trend * (t0 - t1)) / 60)], [t1, r.engagement]];
}

function latestPanel(s) {
  const w = [...s.windows].reverse().find((x) => x.engagement);
  if (!w) return `<p class="muted">No window yet.</p>`;
  const r = room(w);
  const t = w.turns ? w.turns.data : {};
  const withheld = r.withheld ? `<p class="note">Room numbers withheld: fewer people than the minimum contributed to this window.</p>` : "";
  return `<div data-latest-seq="${esc(w.seq)}">
    <p>Window ${num("window_start", w.start)}–${num("window_end", w.end)} s (event ${esc(w.seq)})</p>${withheld}
    <dl class="numbers">
      <div><dt>Engagement</dt><dd>${num("engagement", r.engagement)}</dd></div>
      <div><dt>Trend /min</dt><dd>${num("trend", r.trend, true)}</dd></div>
      <div><dt>Valence</dt><dd>${num("valence", r.valence, true)}</dd></div>
      <div><dt>Arousal</dt><dd>${num("arousal", r.arousal, true)}</dd></div>
      <div><dt>Participants</dt><dd><span data-field="participants" data-value="${esc(r.participants)}">${esc(r.participants)}</span></dd></div>
      <div><dt>Silence</dt><dd>${num("silence_share", t.silence_share)}</dd></div>
      <div><dt>Evenness</dt><dd>${num("evenness", t.evenness)}</dd></div>
    </dl></div>`;
}

function turnsPanel(s) {
  const w = [...s.windows].reverse().find((x) => x.turns);
  if (!w) return `<p class="muted">No turns yet.</p>`;
  const t = w.turns.data;
  let out = `<p>Evenness ${num("turns_evenness", t.evenness)} (1 = everyone spoke alike), silence ${num("turns_silence", t.silence_share)}.</p>`;
  if (s.perPerson) {
    const rows = Object.entries(t.speaking_shares).map(([who, share]) =>
      `<li><span class="who">${esc(who)}</span> <meter min="0" max="1" value="${esc(share)}" aria-label="${esc(who)} speaking share"></meter> ${fmt(share)} · ${esc(t.turns[who] ?? 0)} turns</li>`);
    out += `<ul class="shares" data-people>${rows.join("")}</ul>`;
  }
  return out;
}

function peoplePanel(s) {
  const w = [...s.windows].reverse().find((x) => x.engagement);
  const ps = w ? w.engagement.data.participants : {};
  if (!Object.keys(ps).length) return "";
  const cards = Object.entries(ps).map(([who, p]) => `<article class="person" data-person="${esc(who)}">
      <h4>${esc(who)}</h4>
      <dl class="numbers small">
        <div><dt>Engagement</dt><dd>${fmt(p.engagement)}${p.calibrating ? " (calibrating)" : ""}</dd></div>
        <div><dt>Attention</dt><dd>${fmt(p.components.attention)}</dd></div>
        <div><dt>Expressiveness</dt><dd>${fmt(p.components.expressiveness)}</dd></div>
        <div><dt>Participation</dt><dd>${fmt(p.components.participation)}</dd></div>
        <div><dt>Valence</dt><dd>${fmt(p.valence, true)}</dd></div>
        <div><dt>Speaking</dt><dd>${fmt(p.speaking_share)}</dd></div>
      </dl></article>`);
  return `<section aria-labelledby="h-people"><h3 id="h-people">Participants (latest window)</h3><div class="people">${cards.join("")}</div></section>`;
}

function windowsTable(s) {
  const rows = s.windows.map((w) => {
    const r = room(w) || {};
    const t = w.turns ? w.turns.data : {};
    return `<tr data-seq="${esc(w.seq)}"><td>${secs(w.start)}–${secs(w.end)}</td><td>${num("engagement", r.engagement)}</td><td>${num("valence", r.valence, true)}</td><td>${num("arousal", r.arousal, true)}</td><td>${num("trend", r.trend, true)}</td><td>${num("silence_share", t.silence_share)}</td><td>${num("evenness", t.evenness)}</td><td>${esc(r.participants ?? "–")}</td></tr>`;
  });
  return `<details><summary>Every window (${s.windows.length})</summary><div class="scroll"><table class="windows">
    <caption>Room numbers per window</caption>
    <thead><tr><th scope="col">Media time</th><th scope="col">Engagement</th><th scope="col">Valence</th><th scope="col">Arousal</th><th scope="col">Trend</th><th scope="col">Silence</th><th scope="col">Evenness</th><th scope="col">People</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table></div></details>`;
}

// synchrony.window: the latest span's room numbers, and its pairs where the level allows.
function synchronyPanel(s) {
  const e = s.synchrony[s.synchrony.length - 1];
  const r = e.data.room;
  const span = `${secs(e.media_time.start)}–${secs(e.media_time.end)}`;
  if (r.withheld) {
    return `<p data-synchrony-withheld>${span}: withheld (fewer people than the minimum contributed).</p>`;
  }
  const lag = r.lag_s ? `, leaders ahead by ${num("sync_lag_median", r.lag_s.median)} s (median)` : "";
  let out = `<p>${span}, ${esc(r.participants)} people, ${esc(r.pairs)} pairs: determinism ${num("sync_det", r.det.mean)} ± ${fmt(r.det.sd)}, recurrence ${num("sync_rr", r.rr.mean)}; a clear leader in ${num("sync_led_share", r.led_share)} of pairs${lag}.</p>`;
  if (e.data.pairs.length) {
    const rows = e.data.pairs.map((p) => `<tr data-pair="${esc(p.a)}|${esc(p.b)}"><td>${esc(p.a)}</td><td>${esc(p.b)}</td><td>${fmt(p.det)}</td><td>${fmt(p.rr)}</td><td>${p.leader ? `${esc(p.leader)} by ${fmt(p.lag_s)} s` : "none clear"}</td></tr>`);
    out += `<div class="scroll"><table data-pairs><caption>Pairs (latest span)</caption><thead><tr><th scope="col">A</th><th scope="col">B</th><th scope="col">DET</th><th scope="col">RR</th><th scope="col">Leader</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
  }
  return out;
}

function momentsPanel(s) {
  const items = []; // [media time, html], shown in media-time order
  for (const e of s.shifts) {
    const d = e.data;
    items.push([e.media_time.start, `<li data-moment="sentiment_shift">${secs(e.media_time.start)}: sentiment shift ${d.direction === "up" ? "up ↑" : "down ↓"} (${fmt(d.from_valence, true)} → ${fmt(d.to_valence, true)})</li>`]);
  }
  for (const g of s.gaps) {
    items.push([g.data.gap.start, `<li data-moment="gap">${secs(g.data.gap.start)}–${secs(g.data.gap.end)}: not analysed (the session moved to another worker: ${esc(g.data.reason.replace("_", " "))})</li>`]);
  }
  for (const r of s.revoked) {
    items.push([r.media_time.start, `<li data-moment="revoked">${secs(r.media_time.start)}: a consent was revoked (${esc(r.data.consent_id)}); that person's state was purged and nothing more of them is analysed</li>`]);
  }
  if (s.summary) {
    for (const m of s.summary.data.moments) {
      if (m.kind === "sentiment_shift") continue; // already listed, as detected
      items.push([m.media_time.start, `<li data-moment="${esc(m.kind)}">${secs(m.media_time.start)}–${secs(m.media_time.end)}: ${esc(m.description)}</li>`]);
    }
  }
  items.sort((a, b) => a[0] - b[0]);
  return items.length ? `<ul class="moments">${items.map((i) => i[1]).join("")}</ul>` : `<p class="muted">No moments yet.</p>`;
}

function summaryPanel(s) {
  if (!s.summary) return `<p class="muted">The summary comes when the session ends.</p>`;
  const d = s.summary.data;
  const most = Math.max(0, ...s.windows.map((w) => (room(w) || {}).participants || 0));
  const dropped = Object.entries(d.dropped);
  const droppedList = dropped.length
    ? `<ul data-dropped>${dropped.map(([why, n]) => `<li><span class="reason">${esc(why.replaceAll("_", " "))}</span>: <span data-reason="${esc(why)}">${esc(n)}</span></li>`).join("")}</ul>`
    : `<p>No item was dropped.</p>`;
  let people = "";
  if (s.perPerson && Object.keys(d.participants).length) {
    const keys = [...new Set(Object.values(d.participants).flatMap((p) => Object.keys(p)))];
    people = `<div class="scroll"><table data-people><caption>Per-person means</caption><thead><tr><th scope="col">Person</th>${keys.map((k) => `<th scope="col">${esc(k.replaceAll("_", " "))}</th>`).join("")}</tr></thead><tbody>${Object.entries(d.participants).map(([who, p]) => `<tr><th scope="row">${esc(who)}</th>${keys.map((k) => `<td>${fmt(p[k])}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
  }
  return `<dl class="numbers" data-summary>
      <div><dt>Duration</dt><dd>${num("summary_duration", d.duration_s)} s</dd></div>
      <div><dt>Windows</dt><dd><span data-field="summary_windows" data-value="${esc(d.windows)}">${esc(d.windows)}</span></dd></div>
      <div><dt>Engagement</dt><dd>${num("summary_engagement", d.engagement)}</dd></div>
      <div><dt>Trend /min</dt><dd>${num("summary_trend", d.engagement_trend, true)}</dd></div>
      <div><dt>Valence</dt><dd>${num("summary_valence", d.valence, true)}</dd></div>
      <div><dt>Most people in a window</dt><dd><span data-field="summary_participants" data-value="${most}">${most}</span></dd></div>
    </dl><h4>Items not analysed, by reason</h4>${droppedList}${people}`;
}

function aboutPanel(s) {
  const models = Object.entries(s.models).map(([m, name]) => `<li><strong>${esc(m)}</strong>: ${esc(name)}</li>`).join("");
  const level = s.started ? s.started.data.reporting : "unknown";
  return `<p class="notice" data-notice>${esc(s.notice)}</p>
    <p>Reporting level: <strong data-field="reporting">${esc(level)}</strong>${level === "room" ? " (room aggregates only: nobody is shown)" : ""}.</p>
    <ul class="models">${models}</ul>`;
}

// Render the session into `root`. `state` is a word for people ("live", "reconnecting", ...).
export function renderSession(root, events, { state = "" } = {}) {
  const s = fold(events);
  const gaps = s.gaps.map((g) => [g.data.gap.start, g.data.gap.end]);
  const marks = [
    ...s.shifts.map((e) => ({ t: e.media_time.start, cls: "shift", label: `sentiment shift ${e.data.direction} at ${secs(e.media_time.start)}` })),
    ...s.revoked.map((e) => ({ t: e.media_time.start, cls: "revoked", label: `consent revoked at ${secs(e.media_time.start)}` })),
  ];
  const eng = s.windows.map((w) => [mid(w), room(w) ? room(w).engagement : null]);
  const val = s.windows.map((w) => [mid(w), room(w) ? room(w).valence : null]);
  const det = s.synchrony.map((e) => [e.media_time.end, e.data.room.det ? e.data.room.det.mean : null]);
  const xmax = Math.ceil(s.end);
  root.innerHTML = `
    <header class="session-head">
      <h2>Session <code>${esc(s.sessionId || "…")}</code></h2>
      <p class="state" role="status" aria-live="polite" data-state="${esc(state)}">${esc(state)}</p>
    </header>
    <div class="grid">
      <section aria-labelledby="h-eng" class="wide"><h3 id="h-eng">Room engagement (0–1) over media time</h3>
        ${lineChart({ title: "Room engagement per window, with the recent trend (dashed), sentiment shifts (marks) and gaps (shaded)", series: [{ cls: "eng", points: eng }], lo: 0, hi: 1, xmax, gaps, marks, trend: trendLine(s) })}
      </section>
      <section aria-labelledby="h-val" class="wide"><h3 id="h-val">Room valence (−1–1) over media time</h3>
        ${lineChart({ title: "Room valence per window, with sentiment shifts (marks) and gaps (shaded)", series: [{ cls: "val", points: val }], lo: -1, hi: 1, xmax, gaps, marks })}
      </section>
      ${s.synchrony.length ? `<section aria-labelledby="h-sync" class="wide"><h3 id="h-sync">Synchrony: determinism of expression between people (0–1), at each span's end</h3>
        ${lineChart({ title: "Room mean determinism (DET) of every pair's cross-recurrence over the last span", series: [{ cls: "sync", points: det }], lo: 0, hi: 1, xmax, gaps })}
        ${synchronyPanel(s)}</section>` : ""}
      <section aria-labelledby="h-latest"><h3 id="h-latest">Latest window</h3>${latestPanel(s)}</section>
      <section aria-labelledby="h-turns"><h3 id="h-turns">Turn balance</h3>${turnsPanel(s)}</section>
      <section aria-labelledby="h-moments"><h3 id="h-moments">Moments</h3>${momentsPanel(s)}</section>
      <section aria-labelledby="h-summary"><h3 id="h-summary">Summary</h3>${summaryPanel(s)}</section>
      ${s.perPerson ? peoplePanel(s) : ""}
      <section aria-labelledby="h-about" class="wide"><h3 id="h-about">Models and notice</h3>${aboutPanel(s)}</section>
      <section class="wide">${windowsTable(s)}</section>
    </div>`;
  return s;
}
