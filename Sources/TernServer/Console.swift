/// The web console served at `GET /console`: one self-contained page (HTML, CSS and script
/// inline; no external assets, no build step) that reads everything through the public API.
///
/// Views (hash routes): `#/` overview of queues (depth, rates, oldest age), topics (high
/// watermarks, consumer-group lag) and the cluster's members (gossip view), refreshed every 2 s; `#/queue/NAME` with a live chart of
/// depth and rates over the last 5 minutes, a peek at the next messages, and purge / redrive
/// behind a confirmation; `#/group/TOPIC/GROUP` with lag per partition; `#/cluster` with
/// `GET /cluster` (members, the controller leader and term, and per queue and topic partition
/// its leader, replicas, in-sync replicas, commit and applied index and lag), or a note that
/// the node runs alone. With authentication
/// on, the page asks for a bearer token (kept in `sessionStorage`, typed into a form: never
/// in the URL, where it would land in logs, history and `Referer`).
///
/// The script is served apart (`GET /console/console.js`) so that the page's
/// ``contentSecurityPolicy`` can forbid inline script.
/// Figures carry `data-*` attributes so that tests (and scripts) can read them from the DOM.
enum Console {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tern console</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
  header a { color: #9cc3ff; text-decoration: none; }
  main { padding: 16px 20px; }
  h1 { font-size: 18px; margin: 0; } h2 { font-size: 16px; margin: 20px 0 8px; }
  table { border-collapse: collapse; background: #fff; min-width: 60%; }
  th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6eb; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  th { background: #eef1f5; font-weight: 600; }
  button { padding: 5px 12px; margin-right: 8px; cursor: pointer; }
  button.danger { background: #b42318; color: #fff; border: 0; border-radius: 3px; }
  .muted { color: #6b7280; } .error { color: #b42318; } pre { white-space: pre-wrap; margin: 0; }
  svg { background: #fff; border: 1px solid #e3e6eb; }
  .legend span { margin-right: 14px; } .sw { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
</style>
</head>
<body>
<header><h1>Tern</h1><a href="#/">Overview</a><a href="#/cluster">Cluster</a><span class="muted" id="status">loading…</span></header>
<main id="view"></main>
<div id="login" hidden style="padding:20px">
  <p>This broker requires a bearer token.</p>
  <input id="token" type="password" size="40" placeholder="token"> <button id="save-token">Use token</button>
</div>
<script src="/console/console.js"></script>
</body>
</html>
"""#

    /// The console's script (`GET /console/console.js`).
    static let script = #"""
"use strict";
const REFRESH_MS = 2000, HISTORY_MS = 5 * 60 * 1000;
const history = {};          // queue name -> [{t, ready, in_flight, delayed, sent, acked}]
let lastCounters = null, lastCountersAt = 0, rates = {};

function esc(text) {
  return String(text).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
}
async function api(method, path) {
  const headers = {};
  const token = sessionStorage.getItem("tern.token");
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, {method, headers});
  if (response.status === 401) { document.getElementById("login").hidden = false; throw new Error("a token is required"); }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error((body.error && (body.error.code + ": " + body.error.message)) || response.status);
  return body;
}
document.getElementById("save-token").onclick = () => {
  sessionStorage.setItem("tern.token", document.getElementById("token").value);
  document.getElementById("login").hidden = true; render();
};

/// Counters from the Prometheus text: {"metric": {"queue": value}}.
function parseMetrics(text) {
  const result = {};
  for (const line of text.split("\n")) {
    const m = /^(tern_queue_messages_(sent|acknowledged|received)_total)\{queue="([^"]*)"\} ([0-9.e+]+)$/.exec(line);
    if (m) { (result[m[2]] = result[m[2]] || {})[m[3]] = Number(m[4]); }
  }
  return result;
}
async function updateRates() {
  let text;
  try { text = await api("GET", "/metrics"); } catch (e) { return; }
  const counters = parseMetrics(text), now = Date.now();
  if (lastCounters) {
    const seconds = Math.max((now - lastCountersAt) / 1000, 0.001);
    rates = {};
    for (const kind of ["sent", "acknowledged", "received"]) {
      for (const [queue, value] of Object.entries(counters[kind] || {})) {
        const before = (lastCounters[kind] || {})[queue] || 0;
        (rates[queue] = rates[queue] || {})[kind] = Math.max(0, (value - before) / seconds);
      }
    }
  }
  lastCounters = counters; lastCountersAt = now;
}
function rate(queue, kind) { return ((rates[queue] || {})[kind] || 0).toFixed(1); }
function age(seconds) { return seconds == null ? "–" : seconds < 120 ? seconds.toFixed(1) + " s" : (seconds / 60).toFixed(1) + " min"; }

async function overview() {
  const [queues, topics, cluster] = await Promise.all([api("GET", "/queues"), api("GET", "/topics").catch(() => ({topics: []})),
                                                        api("GET", "/cluster/members").catch(() => ({gossip: false, members: []}))]);
  let html = "<h2>Queues</h2><table id='queues'><tr><th>queue</th><th>ready</th><th>in flight</th><th>delayed</th><th>total</th><th>oldest</th><th>sent/s</th><th>acked/s</th></tr>";
  for (const q of queues.queues) {
    const n = esc(q.name);
    html += `<tr data-queue="${n}"><td><a href="#/queue/${encodeURIComponent(q.name)}">${n}</a></td>` +
      `<td data-field="ready">${q.messages.ready}</td><td data-field="in_flight">${q.messages.in_flight}</td>` +
      `<td data-field="delayed">${q.messages.delayed}</td><td data-field="total">${q.messages.total}</td>` +
      `<td data-field="oldest">${age(q.oldest_message_age)}</td><td data-field="sent_rate">${rate(q.name, "sent")}</td>` +
      `<td data-field="ack_rate">${rate(q.name, "acknowledged")}</td></tr>`;
  }
  html += "</table>";
  html += "<h2>Topics</h2><table id='topics'><tr><th>topic</th><th>partitions</th><th>messages</th><th>bytes</th><th>high watermarks</th></tr>";
  for (const t of topics.topics || []) {
    const n = esc(t.name);
    html += `<tr data-topic="${n}"><td>${n}</td><td data-field="partitions">${t.attributes.partitions}</td>` +
      `<td data-field="messages">${t.messages}</td><td data-field="bytes">${t.bytes}</td>` +
      `<td data-field="high_watermarks">${t.partitions.map(p => p.high_watermark).join(" ")}</td></tr>`;
  }
  html += "</table>" + membersTable(cluster);
  html += "<p class='muted'>Consumer group: <input id='grp-topic' placeholder='topic'> <input id='grp-name' placeholder='group'> <button id='grp-go'>Show lag</button></p>";
  view(html);
  document.getElementById("grp-go").onclick = () => {
    location.hash = "#/group/" + encodeURIComponent(document.getElementById("grp-topic").value) + "/" +
      encodeURIComponent(document.getElementById("grp-name").value);
  };
}

/// The gossip membership view (GET /cluster/members), or a note that the node runs alone.
function membersTable(cluster) {
  if (!cluster.gossip) return "<h2>Cluster</h2><p class='muted' id='members-alone'>This node runs alone (no --gossip).</p>";
  let html = "<h2>Cluster</h2><table id='members'><tr><th>node</th><th>state</th><th>incarnation</th><th>gossip</th><th>HTTP</th><th>zone</th><th>since</th></tr>";
  for (const m of cluster.members) {
    const n = esc(m.node_id), link = m.addresses.http ? `<a href="http://${esc(m.addresses.http)}/console">${esc(m.addresses.http)}</a>` : "–";
    html += `<tr data-member="${n}"><td>${n}${m.local ? " (this node)" : ""}</td><td data-field="state">${esc(m.state)}</td>` +
      `<td data-field="incarnation">${esc(m.incarnation)}</td><td>${esc(m.addresses.gossip)}</td><td>${link}</td>` +
      `<td>${esc(m.zone || "–")}</td><td>${age(Math.max(0, (Date.now() - m.last_change) / 1000))}</td></tr>`;
  }
  return html + "</table>";
}

/// The cluster page: GET /cluster, or a note that the node is not part of a cluster.
async function clusterPage() {
  const c = await api("GET", "/cluster");
  if (!c.clustered) {
    view("<h2>Cluster</h2><p class='muted' id='cluster-alone'>This node runs alone: it is not part of a cluster " +
         "(started without --controllers), so every queue and topic lives only here.</p>");
    return;
  }
  const leader = c.controller && c.controller.leader;
  const dash = v => v == null ? "–" : esc(v);
  let html = `<h2>Cluster</h2><table id="controller"><tr><th>this node</th><th>controllers</th><th>controller leader</th><th>term</th></tr>` +
    `<tr data-controller="${esc(c.node_id)}"><td data-field="node_id">${esc(c.node_id)}</td>` +
    `<td data-field="controllers">${c.controllers.map(esc).join(" ")}</td>` +
    `<td data-field="leader"${leader ? "" : " class='error'"}>${leader ? esc(leader) : "none (election in progress)"}</td>` +
    `<td data-field="term">${dash(c.controller && c.controller.term)}</td></tr></table>`;
  html += membersTable({gossip: true, members: c.members});
  html += "<h2>Replication groups</h2><table id='groups'><tr><th>kind</th><th>name</th><th>partition</th><th>group</th><th>leader</th>" +
    "<th>term</th><th>replicas</th><th>in sync</th><th>commit index</th><th>applied index</th><th>lag (entries)</th><th>snapshot index</th><th>log entries</th></tr>";
  for (const g of c.groups) {
    const key = esc(g.kind + ":" + g.name + (g.partition == null ? "" : ":" + g.partition));
    html += `<tr data-group="${key}"><td>${esc(g.kind)}</td><td>${esc(g.name)}</td><td data-field="partition">${dash(g.partition)}</td>` +
      `<td data-field="group">${dash(g.group)}</td><td data-field="leader"${g.leader ? "" : " class='error'"}>${g.leader ? esc(g.leader) : "none"}</td>` +
      `<td data-field="term">${dash(g.term)}</td><td data-field="replicas">${g.replicas.map(r => esc(r) + ((g.learners || []).includes(r) ? " (learner)" : "")).join(" ")}</td>` +
      `<td data-field="in_sync">${g.in_sync == null ? "–" : g.in_sync.map(esc).join(" ")}</td>` +
      `<td data-field="commit_index">${dash(g.commit_index)}</td><td data-field="applied_index">${dash(g.applied_index)}</td>` +
      `<td data-field="lag">${dash(g.lag)}</td><td data-field="snapshot_index">${dash(g.snapshot_index)}</td>` +
      `<td data-field="log_entries">${dash(g.log_entries)}${g.installing_snapshot ? " (installing a snapshot)" : ""}</td></tr>`;
  }
  html += "</table><p class='muted'>In sync and lag are known only to the group's leader; other nodes show –.</p>";
  view(html);
}

function chart(points, series, height) {
  const width = 640, now = Date.now(), start = now - HISTORY_MS;
  const max = Math.max(1, ...points.flatMap(p => series.map(s => p[s.key] || 0)));
  let svg = `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" data-max="${max}">`;
  for (const s of series) {
    const coords = points.map(p => `${((p.t - start) / HISTORY_MS * width).toFixed(1)},${(height - 4 - (p[s.key] || 0) / max * (height - 8)).toFixed(1)}`);
    svg += `<polyline data-series="${s.key}" fill="none" stroke="${s.color}" stroke-width="2" points="${coords.join(" ")}"/>`;
  }
  return svg + `<text x="4" y="14" font-size="11">${max.toFixed(0)}</text></svg>` +
    `<div class="legend">${series.map(s => `<span><i class="sw" style="background:${s.color}"></i>${s.label}</span>`).join("")}</div>`;
}

async function queuePage(name) {
  const q = await api("GET", "/queues/" + encodeURIComponent(name));
  const peek = await api("GET", "/queues/" + encodeURIComponent(name) + "/peek?max=10").catch(e => ({error: e.message, messages: []}));
  const points = (history[name] = (history[name] || []).filter(p => p.t > Date.now() - HISTORY_MS));
  points.push({t: Date.now(), ready: q.messages.ready, in_flight: q.messages.in_flight, delayed: q.messages.delayed,
               sent: Number(rate(name, "sent")), acked: Number(rate(name, "acknowledged"))});
  const n = esc(q.name);
  let html = `<h2>Queue <span id="queue-name">${n}</span></h2><table id="queue" data-queue="${n}">` +
    `<tr><th>ready</th><th>in flight</th><th>delayed</th><th>total</th><th>bytes</th><th>oldest</th></tr>` +
    `<tr data-counts="${n}"><td data-field="ready">${q.messages.ready}</td><td data-field="in_flight">${q.messages.in_flight}</td>` +
    `<td data-field="delayed">${q.messages.delayed}</td><td data-field="total">${q.messages.total}</td>` +
    `<td data-field="bytes">${q.bytes}</td><td data-field="oldest">${age(q.oldest_message_age)}</td></tr></table>`;
  html += "<h2>Depth (last 5 minutes)</h2>" + chart(points, [
    {key: "ready", label: "ready", color: "#2563eb"}, {key: "in_flight", label: "in flight", color: "#d97706"},
    {key: "delayed", label: "delayed", color: "#7c3aed"}], 160);
  html += "<h2>Rates (messages/s)</h2>" + chart(points, [
    {key: "sent", label: "sent", color: "#059669"}, {key: "acked", label: "acknowledged", color: "#dc2626"}], 120);
  html += `<h2>Next messages (peek, nothing is received)</h2>`;
  if (peek.error) html += `<p class="error">${esc(peek.error)}</p>`;
  html += "<table id='peek'><tr><th>#</th><th>id</th><th>priority</th><th>receives</th><th>body</th></tr>" +
    peek.messages.map((m, i) => `<tr data-peek="${i}"><td>${i + 1}</td><td>${esc(m.id)}</td><td>${m.priority}</td>` +
      `<td>${m.receive_count}</td><td data-field="body"><pre>${esc(m.body.length > 300 ? m.body.slice(0, 300) + "…" : m.body)}</pre></td></tr>`).join("") + "</table>";
  html += `<h2>Actions</h2><button class="danger" id="purge">Purge…</button><button id="redrive">Redrive…</button><span id="action-result"></span>` +
    `<h2>Attributes</h2><pre id="attributes">${esc(JSON.stringify(q.attributes, null, 2))}</pre>`;
  view(html);
  document.getElementById("purge").onclick = async () => {
    if (!confirm(`Purge every message of ${q.name}? This cannot be undone.`)) return;
    const r = await api("POST", "/queues/" + encodeURIComponent(name) + "/purge").catch(e => ({error: e.message}));
    document.getElementById("action-result").textContent = r.error ? r.error : `purged ${r.purged}`;
  };
  document.getElementById("redrive").onclick = async () => {
    if (!confirm(`Move the dead-lettered messages of ${q.name} back to their source queues?`)) return;
    const r = await api("POST", "/queues/" + encodeURIComponent(name) + "/redrive").catch(e => ({error: e.message}));
    document.getElementById("action-result").textContent = r.error ? r.error : `moved ${r.moved}`;
  };
}

async function groupPage(topic, group) {
  const g = await api("GET", "/topics/" + encodeURIComponent(topic) + "/groups/" + encodeURIComponent(group));
  let html = `<h2>Consumer group <span id="group-name">${esc(group)}</span> on topic ${esc(topic)}</h2>` +
    `<p>generation ${g.generation}, ${g.members.length} member(s), total lag <b id="group-lag" data-field="lag">${g.lag}</b></p>` +
    "<table id='group-partitions'><tr><th>partition</th><th>committed</th><th>log start</th><th>high watermark</th><th>lag</th><th>owner</th></tr>";
  for (const p of g.partitions) {
    html += `<tr data-partition="${p.partition}"><td>${p.partition}</td><td data-field="committed">${p.committed == null ? "–" : p.committed}</td>` +
      `<td>${p.log_start}</td><td data-field="high_watermark">${p.high_watermark}</td><td data-field="lag">${p.lag}</td>` +
      `<td>${esc(p.owner || "–")}</td></tr>`;
  }
  view(html + "</table>");
}

function view(html) { document.getElementById("view").innerHTML = html; }
async function render() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const status = document.getElementById("status");
  try {
    await updateRates();
    if (parts[0] === "queue" && parts[1]) await queuePage(parts[1]);
    else if (parts[0] === "group" && parts[1] && parts[2]) await groupPage(parts[1], parts[2]);
    else if (parts[0] === "cluster") await clusterPage();
    else await overview();
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "muted";
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  } catch (e) {
    status.textContent = e.message; status.className = "error";
  }
}
let timer = null;
function schedule() { clearTimeout(timer); timer = setTimeout(async () => { await render(); schedule(); }, REFRESH_MS); }
window.addEventListener("hashchange", () => { render(); schedule(); });
render().then(schedule);
"""#

    /// `Content-Security-Policy` of the console: only its own script, styles inline (the
    /// charts use style attributes), requests to this origin only, no framing, no forms.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

}
