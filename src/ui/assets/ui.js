// Solo's live view: swaps in server-rendered fragments when the API's
// Watch stream (server-sent events) says something changed, and every 2 s
// for the usage graphs. Every request carries the session cookie; actions
// also carry the session's CSRF token. No framework, no build step.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const $ = (id) => document.getElementById(id);
  let selected = null;
  let treeTimer = null;

  async function fragment(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { location.reload(); return null; }
    return r.text();
  }

  function markSelected() {
    document.querySelectorAll("#tree tbody.svc").forEach((tb) => {
      tb.classList.toggle("selected", tb.dataset.service === selected);
    });
  }

  async function refreshTree() {
    const html = await fragment("/tree");
    if (html === null) return;
    $("tree").innerHTML = html;
    markSelected();
  }

  function soonTree() {
    if (treeTimer) return;
    treeTimer = setTimeout(() => { treeTimer = null; refreshTree(); }, 30);
  }

  async function refreshDetail() {
    if (!selected) return;
    const open = new Set(Array.from(document.querySelectorAll("#detail details[open] summary")).map((s) => s.textContent));
    const html = await fragment("/service/" + encodeURIComponent(selected));
    if (html === null) return;
    $("detail").innerHTML = html;
    document.querySelectorAll("#detail details summary").forEach((s) => {
      if (open.has(s.textContent)) s.parentElement.open = true;
    });
  }

  async function select(id) {
    selected = id;
    markSelected();
    $("profile").innerHTML = "";
    await refreshDetail();
    const html = await fragment("/service/" + encodeURIComponent(id) + "/profile");
    if (html !== null && selected === id) $("profile").innerHTML = html;
  }

  $("tree").addEventListener("click", (e) => {
    const tb = e.target.closest("tbody.svc");
    if (tb) select(tb.dataset.service);
  });

  $("detail").addEventListener("click", async (e) => {
    const b = e.target.closest("button.act");
    if (!b) return;
    const act = b.dataset.act;
    const what = act === "revoke" ? b.dataset.grant : b.dataset.id;
    if (!confirm(act + " " + what + "?")) return;
    const body = act === "revoke" ? { grant: what } : { id: what };
    const r = await fetch("/action/" + act, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Solo-Csrf": csrf },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({ ok: false, message: "HTTP " + r.status }));
    const out = $("act-result") || b;
    out.textContent = " " + j.message;
    out.className = j.ok ? "done" : "error";
    soonTree();
  });

  function kindName(k) {
    return String(k || "event").replace(/^EVENT_KIND_/, "").toLowerCase().replace(/_/g, "-");
  }

  function addEvent(ev) {
    const e = ev.event;
    if (!e) return;
    const li = document.createElement("li");
    const t = new Date(Number(ev.atUnixMs || Date.now()));
    const kind = kindName(e.kind);
    li.className = "ev " + kind;
    li.dataset.service = e.service || "";
    const when = document.createElement("time");
    when.textContent = t.toLocaleTimeString([], { hour12: false }) + "." + String(t.getMilliseconds()).padStart(3, "0");
    const who = document.createElement("b");
    who.textContent = (e.service || "solo") + (e.service ? "." + (e.replica || 0) : "");
    const k = document.createElement("span");
    k.className = "kind";
    k.textContent = kind;
    const msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = e.message || "";
    li.append(when, " ", who, " ", k, " ", msg);
    const list = $("events");
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
    soonTree();
    if (e.service && e.service === selected) refreshDetail();
  }

  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "on"; });
    es.addEventListener("watch", (m) => { try { addEvent(JSON.parse(m.data)); } catch (_) { /* not ours */ } });
    es.addEventListener("error", (m) => {
      $("live").textContent = m.data ? m.data : "reconnecting…";
      $("live").className = "off";
    });
  }

  connect();
  setInterval(() => { refreshTree(); refreshDetail(); }, 2000);
})();
