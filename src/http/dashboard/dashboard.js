// dashboard.js — the page of GET /dashboard: polls the admin API
// (/v1/admin/*) every 2 s and draws what it answers. Plain JS, no library;
// everything that comes from the daemon goes into the DOM as text
// (textContent, createElement), never as markup.
"use strict";

(function () {
  const PERIOD_MS = 2000; // between the starts of two refreshes
  const MIN_GAP_MS = 500; // at least this between the end of one and the next
  const TIMEOUT_MS = 10000; // a request slower than this counts as no answer
  const PAGE_SIZE = 20;
  const KEY_STORE = "thumbnailed.admin_key";
  const MSG_MS = 15000; // how long an action's message stays

  const $ = (id) => document.getElementById(id);
  const num = new Intl.NumberFormat("en-US");

  // -------------------------------------------------------------------------
  // DOM helpers (text only)

  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const k in props) {
        const v = props[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = String(v);
        else if (k === "dataset") Object.assign(e.dataset, v);
        else if (k === "colSpan" || k === "rowSpan" || k === "type" || k === "disabled" || k === "title") e[k] = v;
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  function show(el, on) { el.hidden = !on; }

  const msgTimers = new Map();
  function flash(el, text, kind) {
    el.textContent = text;
    el.className = "msg " + (kind === "err" ? "msg-err" : "msg-ok");
    el.hidden = false;
    clearTimeout(msgTimers.get(el));
    msgTimers.set(el, setTimeout(() => { el.hidden = true; }, MSG_MS));
  }

  // -------------------------------------------------------------------------
  // Formatting

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " m " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return hrs + " h " + String(m % 60).padStart(2, "0") + " m";
    return Math.floor(hrs / 24) + " d " + (hrs % 24) + " h";
  }

  const pad2 = (n) => String(n).padStart(2, "0");
  function clock(d) { return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()); }

  // "14:03:22" today, "11-28 14:03:22" another day; the ISO string as title.
  function timeCell(iso) {
    if (!iso) return h("td", { class: "muted", text: "–" });
    const d = new Date(iso);
    if (isNaN(d)) return h("td", { text: iso });
    const now = new Date();
    const same = d.toDateString() === now.toDateString();
    const text = (same ? "" : pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " ") + clock(d);
    return h("td", { class: "time", title: iso, text });
  }

  function fmtBytes(n) {
    if (!(n >= 0)) return "";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function sourceText(src) {
    if (!src) return "";
    if (src.upload) return "(upload)";
    return src.url || "";
  }

  // -------------------------------------------------------------------------
  // The API

  let adminKey = sessionStorage.getItem(KEY_STORE) || "";

  // Resolves to {status, ok, body, blob, error, net}: net is a message when
  // there was no answer (network error, timeout); error is the error object
  // of an error document (§10.1) or one made up from the status.
  async function api(method, path, opts) {
    opts = opts || {};
    const headers = { Accept: opts.blob ? "*/*" : "application/json" };
    if (adminKey) headers.Authorization = "Bearer " + adminKey;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let r;
    try {
      r = await fetch(path, { method, headers, signal: ctl.signal, cache: "no-store", credentials: "omit" });
    } catch (e) {
      clearTimeout(timer);
      return { status: 0, ok: false, net: ctl.signal.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : "network error" };
    }
    const res = { status: r.status, ok: r.ok, body: null, blob: null, error: null, net: null };
    try {
      if (r.ok && opts.blob) res.blob = await r.blob();
      else {
        const text = await r.text();
        if (text) {
          try { res.body = JSON.parse(text); } catch (e) { res.body = null; }
        }
      }
    } catch (e) {
      res.net = "the answer was cut off";
      res.ok = false;
    } finally {
      clearTimeout(timer);
    }
    if (!r.ok) {
      const err = res.body && res.body.error;
      res.error = err && typeof err === "object"
        ? { code: String(err.code || "error"), message: String(err.message || "") }
        : { code: "http_" + r.status, message: r.statusText || "" };
    }
    return res;
  }

  function errText(res) {
    if (res.net) return res.net;
    return `${res.error.code} (${res.status})${res.error.message ? ": " + res.error.message : ""}`;
  }

  // No answer, or an answer that says the daemon cannot serve now.
  const isDown = (res) => res.net !== null && res.net !== undefined || res.status === 502 || res.status === 503 || res.status === 504;

  // -------------------------------------------------------------------------
  // Lists with cursors: cursors[i] is the cursor of page i (null for the first).

  function makeList(state, tbodyId, pagerId, columns) {
    return { state, tbody: $(tbodyId), pager: $(pagerId), columns, cursors: [null], next: null, shown: "", count: null };
  }

  const lists = {
    failed: makeList("failed", "failed-list", "failed-pager", "failed"),
    dead: makeList("dead", "dead-list", "dead-pager", "dead"),
    state: makeList("queued", "state-list", "state-pager", "state"),
  };

  function listPath(l) {
    let p = `/v1/admin/jobs?state=${encodeURIComponent(l.state)}&limit=${PAGE_SIZE}`;
    const c = l.cursors[l.cursors.length - 1];
    if (c) p += "&cursor=" + encodeURIComponent(c);
    return p;
  }

  function idCell(id) {
    return h("td", { class: "id" }, h("button", { type: "button", class: "link mono", dataset: { job: id }, title: "show job " + id, text: id }));
  }

  function statusBadge(status) {
    return h("span", { class: "badge st-" + String(status).replace(/[^a-z_]/g, ""), text: status });
  }

  function jobRow(l, job) {
    const id = String(job.id);
    const err = job.error || {};
    const tr = h("tr", { dataset: { rowJob: id } });
    tr.appendChild(idCell(id));
    if (l.columns === "state") {
      tr.appendChild(h("td", {}, statusBadge(job.status)));
      tr.appendChild(timeCell(job.created_at));
      tr.appendChild(timeCell(job.started_at));
      tr.appendChild(timeCell(job.finished_at));
      tr.appendChild(h("td", { class: "num", text: job.attempts }));
      const src = sourceText(job.source);
      tr.appendChild(h("td", { class: "src", title: src, text: src }));
      tr.appendChild(h("td", { class: "code", text: err.code || "" }));
      return tr;
    }
    tr.appendChild(timeCell(job.finished_at));
    tr.appendChild(h("td", { class: "num", text: job.attempts }));
    tr.appendChild(h("td", { class: "code" }, h("span", { class: "errcode", text: err.code || "" })));
    const src = sourceText(job.source);
    const message = err.message || "";
    tr.appendChild(h("td", { class: "message", title: message + (src ? "\nsource: " + src : ""), text: message }));
    if (l.columns === "dead")
      tr.appendChild(h("td", { class: "actions" },
        h("button", { type: "button", class: "btn btn-small", dataset: { retry: id }, title: "queue it again", text: "Retry" })));
    return tr;
  }

  function colCount(l) { return l.columns === "state" ? 8 : l.columns === "dead" ? 6 : 5; }

  function renderList(l, res) {
    const page = l.cursors.length;
    if (!res.ok) {
      const key = "err:" + errText(res);
      if (key === l.shown) return;
      l.shown = key;
      l.tbody.replaceChildren(h("tr", { class: "empty" },
        h("td", { colSpan: colCount(l), class: "msg-err", text: "Cannot list: " + errText(res) })));
      renderPager(l, false);
      return;
    }
    const jobs = Array.isArray(res.body && res.body.jobs) ? res.body.jobs : [];
    l.next = res.body.next_cursor || null;
    const key = page + ":" + l.state + ":" + JSON.stringify(jobs) + ":" + l.next;
    if (key !== l.shown) {
      l.shown = key;
      if (jobs.length === 0) {
        const what = page > 1 ? "No more jobs on this page." : `No ${l.state} jobs.`;
        l.tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colSpan: colCount(l), class: "muted", text: what })));
      } else {
        l.tbody.replaceChildren(...jobs.map((j) => jobRow(l, j)));
      }
    }
    renderPager(l, true);
  }

  function renderPager(l, ok) {
    const page = l.cursors.length;
    const prev = h("button", { type: "button", class: "btn btn-small", dataset: { pager: "prev" }, disabled: page <= 1, text: "← newer" });
    const next = h("button", { type: "button", class: "btn btn-small", dataset: { pager: "next" }, disabled: !ok || !l.next, text: "older →" });
    const first = h("button", { type: "button", class: "btn btn-small btn-quiet", dataset: { pager: "first" }, disabled: page <= 1, text: "newest" });
    const info = h("span", { class: "muted", text: `page ${page} · ${PAGE_SIZE} a page` + (l.count !== null ? ` · ${num.format(l.count)} in all` : "") });
    const key = [page, ok, !!l.next, l.count].join(":");
    if (l.pager.dataset.key === key) return;
    l.pager.dataset.key = key;
    l.pager.replaceChildren(first, prev, next, info);
  }

  function pageMove(l, how) {
    if (how === "next" && l.next) l.cursors.push(l.next);
    else if (how === "prev" && l.cursors.length > 1) l.cursors.pop();
    else if (how === "first") l.cursors = [null];
    else return;
    l.next = null;
    refreshNow();
  }

  // -------------------------------------------------------------------------
  // The overview

  let overview = null;

  function statItems(dl, items) {
    const key = JSON.stringify(items);
    if (dl.dataset.key === key) return;
    dl.dataset.key = key;
    dl.replaceChildren(...items.map(([label, value, cls, title]) =>
      h("div", { class: "stat " + (cls || ""), title: title || "", dataset: { stat: label } },
        h("dt", { text: label }), h("dd", { text: value === null || value === undefined ? "–" : num.format(value) }))));
  }

  function renderOverview(o) {
    overview = o;
    $("node").textContent = o.node ? "node " + o.node : "";
    const q = o.queues || {}, d = q.deliveries || {}, j = o.jobs || {};
    statItems($("queues"), [
      ["ready", q.ready, "", "jobs waiting for a worker"],
      ["delayed", q.delayed, "", "jobs waiting for a retry"],
      ["processing", q.processing, q.processing > 0 ? "busy" : ""],
      ["dead", q.dead, q.dead > 0 ? "bad" : "", "failed jobs out of attempts"],
    ]);
    statItems($("deliveries"), [
      ["ready", d.ready], ["delayed", d.delayed], ["dead", d.dead, d.dead > 0 ? "bad" : ""],
    ]);
    statItems($("jobs-by-state"), [
      ["queued", j.queued], ["processing", j.processing, j.processing > 0 ? "busy" : ""],
      ["done", j.done, j.done > 0 ? "good" : ""], ["failed", j.failed, j.failed > 0 ? "bad" : ""], ["dead", j.dead, j.dead > 0 ? "bad" : ""],
    ]);

    const paused = !!o.paused;
    show($("paused-banner"), paused);
    show($("pause"), !paused);
    show($("resume"), paused);
    document.body.classList.toggle("is-paused", paused);

    lists.failed.count = j.failed ?? null;
    lists.dead.count = j.dead ?? null;
    lists.state.count = j[lists.state.state] ?? null;
    $("failed-count").textContent = j.failed !== undefined ? `${num.format(j.failed)} recent` : "";
    $("dead-count").textContent = j.dead !== undefined ? num.format(j.dead) : "";
    $("purge").disabled = !(j.dead > 0);
    $("purge").title = j.dead > 0 ? "delete every dead job" : "no dead job to purge";
    for (const t of document.querySelectorAll("#tabs .tab")) {
      const n = j[t.dataset.state];
      t.textContent = t.dataset.state + (n !== undefined ? " " + num.format(n) : "");
    }
    renderFleet(o);
    renderCharts(o);
  }

  // One row a node; its workers as a strip of fixed-width cells (pid, state,
  // restarts / job, running time, jobs done), so a dozen nodes fit a screen.
  function workerCell(w) {
    const st = String(w.state || "");
    const job = w.job ? String(w.job) : "";
    return h("div", { class: "wk wk-" + st.replace(/[^a-z]/g, ""), dataset: { worker: w.pid } },
      h("div", { class: "wk-line" },
        h("span", { class: "mono wk-pid", title: "worker pid", text: w.pid }),
        statusBadge(st),
        h("span", { class: "wk-rs" + (w.restarts ? " warn" : ""), title: "restarts of this worker slot",
          text: "↻ " + (w.restarts ?? 0) })),
      h("div", { class: "wk-line" },
        job ? h("button", { type: "button", class: "link mono wk-job", dataset: { job }, title: "show job " + job, text: job })
          : h("span", { class: "muted wk-job", text: "no job" }),
        h("span", { class: "wk-ms", title: job ? "running for" : "", text: job ? fmtDuration(w.job_ms) : "" }),
        h("span", { class: "wk-done", title: "jobs done by this worker", text: "✓ " + (w.jobs_done !== undefined ? num.format(w.jobs_done) : "–") })));
  }

  function renderFleet(o) {
    const nodes = Array.isArray(o.nodes) ? o.nodes.slice() : [];
    nodes.sort((a, b) => String(a.id).localeCompare(String(b.id), "en", { numeric: true }));
    let workers = 0, busy = 0;
    const rows = [];
    for (const n of nodes) {
      const ws = Array.isArray(n.workers) ? n.workers : [];
      workers += ws.length;
      busy += ws.filter((w) => w.state === "busy").length;
      const age = n.heartbeat_age_ms;
      const ageCls = age > 15000 ? "bad" : age > 5000 ? "warn" : "";
      const hs = Array.isArray(n.http) ? n.http : [], ds = Array.isArray(n.delivery) ? n.delivery : [];
      const childRestarts = [...hs, ...ds].reduce((s, c) => s + (c.restarts || 0), 0);
      const done = ws.reduce((s, w) => s + (w.jobs_done || 0), 0);
      const up = n.started_at_ms && o.now_ms ? "up " + fmtDuration(o.now_ms - n.started_at_ms) : "";
      rows.push(h("tr", { dataset: { node: n.id } },
        h("td", { class: "node", title: [n.listen && "listen " + n.listen, n.redis && "redis " + n.redis,
          "http pids " + hs.map((c) => c.pid).join(", "), "delivery pids " + ds.map((c) => c.pid).join(", ")].filter(Boolean).join("\n") },
          h("div", {}, h("span", { class: "mono node-id", text: n.id }),
            n.paused ? h("span", { class: "badge st-paused", text: "paused" }) : null,
            n.id === o.node ? h("span", { class: "badge st-self", title: "the node that answers this page", text: "this" }) : null),
          h("div", { class: "node-sub" },
            h("span", { class: "mono", title: "version", text: n.version ? "v" + n.version : "" }), " · ", up, " · ",
            h("span", { class: childRestarts ? "warn" : "", text: `${hs.length} http · ${ds.length} delivery` + (childRestarts ? ` · ${childRestarts} restarts` : "") }))),
        h("td", { class: "num " + ageCls, title: "age of its last heartbeat", text: fmtDuration(age) }),
        h("td", { class: "num", title: "jobs done by its workers", text: num.format(done) }),
        h("td", { class: "workers" }, ws.length ? h("div", { class: "wk-strip" }, ...ws.map(workerCell))
          : h("span", { class: "muted", text: "no workers" }))));
    }
    if (rows.length === 0) rows.push(h("tr", { class: "empty" }, h("td", { colSpan: 4, class: "muted", text: "No node has a heartbeat." })));
    $("fleet").replaceChildren(...rows);
    $("fleet-summary").textContent = `${nodes.length} node${nodes.length === 1 ? "" : "s"} · ${workers} workers · ${busy} busy`;
  }

  // -------------------------------------------------------------------------
  // Charts

  const countFmt = (v) => num.format(Math.round(v * 100) / 100);
  // Milliseconds: "250" on the axis (its label says ms), "250 ms" elsewhere; seconds from 1 s.
  function msFmt(v, withUnit) {
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s";
    return Math.round(v) + (withUnit ? " ms" : "");
  }
  const arr = (a, n) => (Array.isArray(a) ? a : new Array(n).fill(null));
  const sum = (a) => a.reduce((s, v) => s + (v || 0), 0);
  function lastValue(a) { for (let i = a.length - 1; i >= 0; i--) if (a[i] !== null && a[i] !== undefined) return a[i]; return null; }

  function renderCharts(o) {
    const s = o.series;
    if (!s || !Array.isArray(s.minute_ms)) return;
    const x = s.minute_ms, n = x.length;
    const done = arr(s.done, n), failed = arr(s.failed, n), retried = arr(s.retried, n);
    const p50 = arr(s.p50_ms, n), p95 = arr(s.p95_ms, n);
    window.Charts.line($("chart-throughput"), { x, label: "jobs done per minute", yLabel: "jobs / min", integer: true,
      format: countFmt, series: [{ name: "done", values: done, cls: "s-done" }] });
    window.Charts.line($("chart-failures"), { x, label: "failures per minute", yLabel: "jobs / min", integer: true,
      format: countFmt, series: [{ name: "failed", values: failed, cls: "s-failed" }, { name: "retried", values: retried, cls: "s-retried" }] });
    window.Charts.line($("chart-latency"), { x, label: "job latency p50 and p95", yLabel: "ms", format: msFmt, integer: true, emptyTop: 100,
      series: [{ name: "p50", values: p50, cls: "s-p50" }, { name: "p95", values: p95, cls: "s-p95" }] });
    $("sum-throughput").textContent = `${num.format(sum(done))} in the hour`;
    $("sum-failures").textContent = `${num.format(sum(failed))} failed · ${num.format(sum(retried))} retried`;
    const l50 = lastValue(p50), l95 = lastValue(p95);
    $("sum-latency").textContent = l95 === null ? "no job finished" : `latest p50 ${msFmt(l50 ?? 0, true)} · p95 ${msFmt(l95, true)}`;
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (overview) renderCharts(overview); }, 150);
  });

  // -------------------------------------------------------------------------
  // Connection state, the key prompt

  let downSince = null, lastGood = null, needKey = false;

  function setLink(kind, text) {
    const el = $("link");
    el.className = "link-state link-" + kind;
    el.textContent = text;
  }

  function markDown(why) {
    if (downSince === null) downSince = new Date();
    const b = $("down-banner");
    b.textContent = `The daemon is not answering since ${clock(downSince)} (${why}). Retrying every ${PERIOD_MS / 1000} s` +
      (lastGood ? `; the figures below are from ${clock(lastGood)}.` : ".");
    show(b, true);
    document.body.classList.add("stale");
    setLink("down", "not answering");
  }

  function markUp() {
    downSince = null;
    lastGood = new Date();
    show($("down-banner"), false);
    document.body.classList.remove("stale");
    setLink("up", "live");
    $("updated").textContent = "updated " + clock(lastGood);
  }

  function askKey(why) {
    needKey = true;
    show($("auth"), true);
    show($("main"), false);
    show($("forget-key"), false);
    setLink("auth", "admin key needed");
    const e = $("auth-error");
    e.textContent = why || "";
    show(e, !!why);
    $("auth-key").focus();
  }

  $("auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("auth-key").value.trim();
    if (!k) return;
    adminKey = k;
    sessionStorage.setItem(KEY_STORE, k);
    $("auth-key").value = "";
    needKey = false;
    show($("auth"), false);
    show($("main"), true);
    refreshNow();
  });

  $("forget-key").addEventListener("click", () => {
    adminKey = "";
    sessionStorage.removeItem(KEY_STORE);
    refreshNow();
  });

  // Returns true when res is an answer about access (the prompt is shown).
  function handleAccess(res) {
    if (res.status === 401) {
      if (adminKey) { adminKey = ""; sessionStorage.removeItem(KEY_STORE); }
      askKey("");
      return true;
    }
    if (res.status === 403) {
      if (adminKey) {
        adminKey = "";
        sessionStorage.removeItem(KEY_STORE);
        askKey("That key is wrong: the daemon refused it (403 forbidden). " + (res.error.message || ""));
      } else {
        const b = $("fatal-banner");
        b.textContent = "The daemon refuses this page: " + errText(res);
        show(b, true);
        setLink("down", "refused");
      }
      return true;
    }
    return false;
  }

  // -------------------------------------------------------------------------
  // The refresh loop: one refresh at a time; the next one is scheduled when
  // it ends, so a slow daemon never has requests piling up.

  let inflight = false, again = false, timer = null;

  async function refresh() {
    if (needKey) return;
    inflight = true;
    const started = performance.now();
    try {
      const order = [lists.failed, lists.dead, lists.state];
      const all = await Promise.all([api("GET", "/v1/admin/overview"), ...order.map((l) => api("GET", listPath(l)))]);
      const [ov, ...rest] = all;
      for (const r of all) if (handleAccess(r)) return;
      show($("fatal-banner"), false);
      const down = all.find(isDown);
      if (down && isDown(ov)) { markDown(errText(down)); return; }
      show($("forget-key"), !!adminKey);
      if (ov.ok && ov.body) { renderOverview(ov.body); markUp(); }
      else { markUp(); setLink("warn", "overview: " + errText(ov)); }
      order.forEach((l, i) => {
        const r = rest[i];
        // A cursor that no longer parses (or has gone): back to the newest page.
        if (r.status === 400 && l.cursors.length > 1 && r.error.code === "invalid_param") { l.cursors = [null]; again = true; return; }
        renderList(l, r);
      });
    } catch (e) {
      // A bug of this page: say it, and keep polling.
      markDown("the page failed: " + (e && e.message));
      throw e;
    } finally {
      inflight = false;
      if (!needKey) {
        const wait = again ? 0 : Math.max(MIN_GAP_MS, PERIOD_MS - (performance.now() - started));
        again = false;
        clearTimeout(timer);
        timer = setTimeout(refresh, wait);
      }
    }
  }

  function refreshNow() {
    if (inflight) { again = true; return; }
    clearTimeout(timer);
    needKey = false;
    refresh();
  }

  // -------------------------------------------------------------------------
  // Actions

  async function pauseResume(what) {
    const btn = $(what);
    btn.disabled = true;
    const res = await api("POST", "/v1/admin/" + what);
    btn.disabled = false;
    if (handleAccess(res)) return;
    if (!res.ok) { alertBanner(`${what} refused: ${errText(res)}`); return; }
    const paused = !!(res.body && res.body.paused);
    show($("paused-banner"), paused);
    show($("pause"), !paused);
    show($("resume"), paused);
    refreshNow();
  }
  $("pause").addEventListener("click", () => pauseResume("pause"));
  $("resume").addEventListener("click", () => pauseResume("resume"));

  function alertBanner(text) {
    const b = $("action-banner");
    b.textContent = text;
    show(b, true);
    setTimeout(() => show(b, false), MSG_MS);
  }

  async function retry(id, btn, msgEl) {
    if (btn) { btn.disabled = true; btn.textContent = "…"; }
    const res = await api("POST", `/v1/admin/jobs/${encodeURIComponent(id)}/retry`);
    if (handleAccess(res)) return;
    if (res.ok) {
      if (btn) btn.textContent = "queued";
      flash(msgEl, `Job ${id} is queued again.`, "ok");
      refreshNow();
      return res;
    }
    if (btn) { btn.disabled = false; btn.textContent = "Retry"; }
    flash(msgEl, `Retry of ${id} refused: ${errText(res)}`, "err");
    return res;
  }

  $("purge").addEventListener("click", () => {
    const n = overview && overview.jobs ? overview.jobs.dead : null;
    $("purge-question").textContent = n === null || n === undefined
      ? "Delete every dead job for good?"
      : `Delete ${num.format(n)} dead job${n === 1 ? "" : "s"} for good (documents, results, sources)?`;
    show($("purge-confirm"), true);
    $("purge-no").focus();
  });
  $("purge-no").addEventListener("click", () => show($("purge-confirm"), false));
  $("purge-yes").addEventListener("click", async () => {
    const yes = $("purge-yes");
    yes.disabled = true;
    const res = await api("DELETE", "/v1/admin/dead");
    yes.disabled = false;
    show($("purge-confirm"), false);
    if (handleAccess(res)) return;
    if (res.ok) {
      const n = res.body && res.body.purged;
      flash($("dead-msg"), `Purged ${num.format(n || 0)} dead job${n === 1 ? "" : "s"}.`, "ok");
      lists.dead.cursors = [null];
      refreshNow();
    } else flash($("dead-msg"), "Purge refused: " + errText(res), "err");
  });

  // Tabs of the other states' lists.
  function selectTab(state) {
    for (const t of document.querySelectorAll("#tabs .tab")) {
      const on = t.dataset.state === state;
      t.classList.toggle("active", on);
      t.setAttribute("aria-selected", on ? "true" : "false");
    }
    const l = lists.state;
    if (l.state === state && l.shown) return;
    l.state = state;
    l.cursors = [null];
    l.next = null;
    l.shown = "";
    l.count = overview && overview.jobs ? overview.jobs[state] ?? null : null;
    l.tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colSpan: 8, class: "muted", text: "Loading…" })));
    refreshNow();
  }

  // -------------------------------------------------------------------------
  // The job dialog

  const dialog = $("job-dialog");
  let dialogUrl = null, dialogId = null;

  function closeDialog() {
    if (dialog.open) dialog.close();
  }
  dialog.addEventListener("close", () => {
    dialogId = null;
    $("job-dialog-img").removeAttribute("src");
    if (dialogUrl) { URL.revokeObjectURL(dialogUrl); dialogUrl = null; }
  });
  $("job-dialog-close").addEventListener("click", closeDialog);
  dialog.addEventListener("click", (ev) => { if (ev.target === dialog) closeDialog(); });
  $("job-dialog-retry").addEventListener("click", async () => {
    const id = dialogId;
    const res = await retry(id, $("job-dialog-retry"), $("job-dialog-msg"));
    if (res && res.ok && id === dialogId) openJob(id, true);
  });

  async function openJob(id, keepMsg) {
    dialogId = id;
    $("job-dialog-id").textContent = id;
    $("job-dialog-status").textContent = "";
    $("job-dialog-status").className = "badge";
    $("job-dialog-json").textContent = "Loading…";
    show($("job-dialog-figure"), false);
    show($("job-dialog-retry"), false);
    if (!keepMsg) $("job-dialog-msg").hidden = true;
    if (dialogUrl) { URL.revokeObjectURL(dialogUrl); dialogUrl = null; }
    if (!dialog.open) dialog.showModal();
    const res = await api("GET", `/v1/admin/jobs/${encodeURIComponent(id)}`);
    if (id !== dialogId) return;
    if (handleAccess(res)) { closeDialog(); return; }
    if (!res.ok) { $("job-dialog-json").textContent = "Cannot read the job: " + errText(res); return; }
    const doc = res.body || {};
    $("job-dialog-json").textContent = JSON.stringify(doc, null, 2);
    $("job-dialog-status").textContent = doc.status || "";
    $("job-dialog-status").className = "badge st-" + String(doc.status || "").replace(/[^a-z_]/g, "");
    const rb = $("job-dialog-retry");
    rb.disabled = false;
    rb.textContent = "Retry";
    show(rb, doc.status === "failed");
    if (doc.status !== "done") return;
    const img = await api("GET", `/v1/admin/jobs/${encodeURIComponent(id)}/image`, { blob: true });
    if (id !== dialogId) return;
    if (!img.ok || !img.blob) {
      $("job-dialog-caption").textContent = "No thumbnail: " + errText(img);
      $("job-dialog-img").removeAttribute("src");
      show($("job-dialog-figure"), true);
      return;
    }
    dialogUrl = URL.createObjectURL(img.blob);
    $("job-dialog-img").src = dialogUrl;
    const r = doc.result || {};
    $("job-dialog-caption").textContent = [r.mime || img.blob.type, r.width && r.height ? `${r.width} × ${r.height}` : "", fmtBytes(r.bytes ?? img.blob.size)]
      .filter(Boolean).join(" · ");
    show($("job-dialog-figure"), true);
  }

  // -------------------------------------------------------------------------
  // Clicks, delegated: job ids, retry buttons, pagers, tabs.

  document.addEventListener("click", (ev) => {
    const t = ev.target instanceof Element ? ev.target : null;
    if (!t) return;
    const job = t.closest("[data-job]");
    if (job) { openJob(job.dataset.job); return; }
    const rb = t.closest("[data-retry]");
    if (rb) { retry(rb.dataset.retry, rb, $("dead-msg")); return; }
    const pg = t.closest("[data-pager]");
    if (pg && !pg.disabled) {
      const panel = pg.closest(".list-panel");
      const l = panel.id === "failed-panel" ? lists.failed : panel.id === "dead-panel" ? lists.dead : lists.state;
      pageMove(l, pg.dataset.pager);
      return;
    }
    const tab = t.closest("#tabs .tab");
    if (tab) selectTab(tab.dataset.state);
  });

  // Placeholders until the first overview.
  statItems($("queues"), ["ready", "delayed", "processing", "dead"].map((k) => [k, null]));
  statItems($("deliveries"), ["ready", "delayed", "dead"].map((k) => [k, null]));
  statItems($("jobs-by-state"), ["queued", "processing", "done", "failed", "dead"].map((k) => [k, null]));
  selectTab("queued");
})();
