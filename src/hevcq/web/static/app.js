// The hevcq dashboard: polls the API and draws tables and two small SVG charts.
"use strict";
const hevcq = (() => {
  const POLL_MS = 1000;
  // A running job's step where its percent says nothing: before and after its encode.
  const SHOWN_STEPS = ["searching", "verifying"];
  // A running job's step as people read it; a quality search names its probe under way.
  const stepShown = (r) => !SHOWN_STEPS.includes(r.step) ? ""
    : r.step === "searching" && r.probe ? `searching, probe ${r.probe}` : r.step;
  const DLQ_POLL_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fdd", "#1f8a4c", "#b7791f", "#8e44ad", "#c0392b"];

  const $ = (sel) => document.querySelector(sel);
  // Names, keys and reasons come from outside: a bidi override in a file name would show
  // "invoice\u202egpj.mp4" as "invoice4pm.jpg" and reverse the text after it. Controls,
  // line separators and bidi controls are shown as their escapes, as on the terminal
  // (hevcq.printable); tabs and line breaks, which HTML shows as spaces, are left. Every
  // text the page writes goes through here.
  const UNSHOWN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
  const shown = (text) => String(text).replace(UNSHOWN, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
  const el = (tag, attrs = {}, ...kids) => {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      // style through CSSOM: the Content-Security-Policy refuses style attributes.
      if (k === "text") node.textContent = shown(v); else if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
    }
    for (const kid of kids) node.append(typeof kid === "string" ? shown(kid) : kid);
    return node;
  };
  const bytes = (n) => {
    if (n === null || n === undefined) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0; let v = Math.abs(n);
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
    return (n < 0 ? "-" : "") + v.toFixed(v < 10 && i ? 1 : 0) + " " + units[i];
  };
  const secs = (s) => (s === null || s === undefined ? "-" : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");

  // The address `hevcq ingest` and `hevcq serve` print for the embedded farm carries the
  // run's token in its fragment, which a browser never sends to the server: keep it for
  // this tab and take it out of the address bar, history and bookmarks.
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem("hevcq-token", given);
    history.replaceState(null, "", location.pathname + location.search);
  }

  async function api(path, options = {}) {
    const headers = { "X-Hevcq-Request": "1", ...(options.headers || {}) };
    const token = sessionStorage.getItem("hevcq-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(path, { ...options, headers });
    if (resp.status === 401) { $("#login").hidden = false; throw new Error("unauthorized"); }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.detail || resp.statusText);
    return body;
  }

  function banner(text) {
    const b = $("#banner"); b.hidden = !text; b.textContent = shown(text || "");
  }

  async function health() {
    const h = await api("/api/health");
    $("#farm").textContent = shown(h.farm || "");
    if (h.status !== "ok") banner(h.status === "no farm" ? `No farm to show${h.detail ? `: ${h.detail}` : "."}` : "The farm does not answer.");
    return h.status === "ok";
  }

  function fillRows(table, rows) {
    const body = $(`${table} tbody`);
    body.replaceChildren(...rows);
  }

  function cards(t) {
    const card = (label, value, id) => el("div", { class: "card", id }, el("b", { text: value }), label);
    $("#totals").replaceChildren(
      card("saved", bytes(t.saved_bytes), "total-saved"),
      card("done", String(t.done), "total-done"),
      card("skipped", String(t.skipped), "total-skipped"),
      card("failed", String(t.failed), "total-failed"),
      card("in / out", `${bytes(t.input_bytes)} → ${bytes(t.output_bytes)}`),
    );
  }

  function axes(svg, w, h, label) {
    svg.replaceChildren(
      el("svg:line", { x1: 30, y1: h - 20, x2: w - 5, y2: h - 20, stroke: "#c9ced8" }),
      el("svg:line", { x1: 30, y1: 5, x2: 30, y2: h - 20, stroke: "#c9ced8" }),
      el("svg:text", { x: 2, y: 12, "font-size": 9, fill: "#6b7385", text: label }),
    );
  }

  function savedChart(points) {
    const svg = $("#chart-saved"); const w = 400; const h = 160;
    const top = Math.max(1, ...points.map((p) => p.saved_bytes));
    axes(svg, w, h, bytes(top));
    if (!points.length) { svg.append(el("svg:text", { x: 150, y: 80, fill: "#6b7385", text: "nothing saved yet" })); return; }
    const t0 = Date.parse(points[0].at); const t1 = Math.max(t0 + 1, Date.parse(points[points.length - 1].at));
    const x = (p) => 30 + ((Date.parse(p.at) - t0) / (t1 - t0)) * (w - 40);
    const y = (p) => h - 20 - (Math.max(0, p.saved_bytes) / top) * (h - 30);
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p).toFixed(1)},${y(p).toFixed(1)}`).join(" ");
    svg.append(el("svg:path", { d, fill: "none", stroke: COLORS[0], "stroke-width": 2 }));
    for (const p of points) svg.append(el("svg:circle", { cx: x(p), cy: y(p), r: 2.5, fill: COLORS[0] }));
  }

  function hourlyChart(counts) {
    const svg = $("#chart-hourly"); const w = 400; const h = 160;
    const pools = [...new Set(counts.map((c) => c.pool))].sort();
    const hours = [...new Set(counts.map((c) => c.hour))].sort();
    const top = Math.max(1, ...counts.map((c) => c.jobs));
    axes(svg, w, h, `${top} jobs`);
    if (!counts.length) { svg.append(el("svg:text", { x: 150, y: 80, fill: "#6b7385", text: "no jobs finished yet" })); return; }
    const slot = (w - 40) / hours.length; const bar = Math.max(2, (slot - 4) / pools.length);
    for (const c of counts) {
      const i = hours.indexOf(c.hour); const j = pools.indexOf(c.pool);
      const bh = (c.jobs / top) * (h - 30);
      svg.append(el("svg:rect", { x: 32 + i * slot + j * bar, y: h - 20 - bh, width: bar - 1, height: bh, fill: COLORS[j % COLORS.length] },
        el("svg:title", { text: `${c.pool} ${time(c.hour)}: ${c.jobs}` })));
    }
    pools.forEach((p, j) => svg.append(el("svg:text", { x: 40 + j * 60, y: h - 5, "font-size": 10, fill: COLORS[j % COLORS.length], text: p })));
  }

  function jobLink(job) {
    return job.job_id ? el("a", { href: `/jobs/${job.job_id}`, text: job.key }) : document.createTextNode(shown(job.key));
  }

  function render(d) {
    cards(d.totals);
    savedChart(d.totals.saved_over_time);
    hourlyChart(d.totals.jobs_per_hour);
    fillRows("#pools", d.status.pools.map((p) => el("tr", { "data-pool": p.pool },
      el("td", { text: p.pool }), el("td", { class: "num", text: p.waiting }), el("td", { class: "num", text: p.in_flight }),
      el("td", { class: "num", text: p.delayed }), el("td", { class: "num", text: p.dead_lettered }),
      el("td", { class: "num", text: p.workers_alive }))));
    const running = d.status.running.map((r) => el("tr", { "data-job": r.job_id },
      el("td", {}, jobLink(r)), el("td", { text: r.pool }),
      el("td", {}, el("span", { class: "bar" }, el("i", { style: `width:${Math.min(100, r.progress)}%` })),
        " ", el("span", { class: "pct", text: `${r.progress.toFixed(1)}%` }),
        " ", el("span", { class: "step muted", text: stepShown(r) })),
      el("td", { class: "num fps", text: r.fps ?? "-" }), el("td", { class: "num speed", text: r.speed ? `${r.speed}x` : "-" }),
      el("td", { class: "num eta", text: secs(r.eta_s) }), el("td", { class: "muted", text: r.worker })));
    fillRows("#running", running.length ? running : [el("tr", {}, el("td", { colspan: 7, class: "muted", text: "nothing running" }))]);
    fillRows("#recent", d.recent.map((j) => el("tr", { class: `state-${j.state}`, "data-job": j.job_id },
      el("td", { text: time(j.finished_at) }), el("td", {}, jobLink(j)), el("td", { text: j.pool }),
      el("td", { class: "outcome", text: j.failure_class ? `${j.state} (${j.failure_class})` : j.state }),
      el("td", { class: "num", text: j.output_bytes ? `${bytes(j.input_bytes)} → ${bytes(j.output_bytes)}` : bytes(j.input_bytes) }),
      el("td", { class: "num", text: bytes(j.saved_bytes) }), el("td", { class: "reason", text: j.reason || "" }))));
  }

  async function redrive(body, question) {
    if (!window.confirm(shown(question))) return;
    try {
      const r = await api("/api/redrive", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      banner(`${r.pool}: ${typeof r.moved === "number" ? `${r.moved} moved back` : r.moved}`);
    } catch (e) { banner(`redrive failed: ${e.message}`); }
    deadLetters();
  }

  async function deadLetters() {
    let letters;
    try { letters = await api("/api/deadletters"); } catch (e) { return; }
    const groups = new Map();
    for (const m of letters) {
      const k = `${m.pool}\u0000${m.failure_class}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(m);
    }
    const box = $("#dlq");
    if (!groups.size) { box.replaceChildren(el("p", { class: "muted", text: "none" })); return; }
    box.replaceChildren(...[...groups.values()].map((ms) => {
      const { pool, failure_class: cls } = ms[0];
      const known = ["permanent", "transient", "stalled", "interrupted", "scoring"].includes(cls);
      const all = el("button", { class: "redrive-class", text: `Redrive ${ms.length}` });
      all.onclick = () => redrive({ pool, failure_class: known ? cls : null },
        `Send ${known ? `every ${cls}` : "every"} dead letter of ${pool} back to its queue?`);
      return el("div", { class: "dlq-group", "data-pool": pool, "data-class": cls },
        el("b", { text: `${pool} · ${cls} · ${ms.length}` }), " ", all,
        el("ul", {}, ...ms.map((m) => {
          const one = el("button", { class: "redrive-one", text: "Redrive" });
          one.onclick = () => redrive({ pool, message_id: m.message_id }, `Send ${m.keys.join(", ") || m.message_id} back to ${pool}?`);
          return el("li", { "data-message": m.message_id }, `${m.keys.join(", ") || "(unreadable message)"}: `,
            el("span", { class: "reason", text: m.reason }), " ", one);
        })));
    }));
  }

  function login(then) {
    $("#login").onsubmit = (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("hevcq-token", $("#token").value);
      $("#login").hidden = true;
      then();
    };
  }

  async function dashboard() {
    login(dashboard);
    let ok = false;
    try { ok = await health(); } catch (e) { banner(`cannot reach the server: ${e.message}`); }
    if (!ok) return;
    const tick = async () => {
      try { render(await api("/api/dashboard")); } catch (e) { if (e.message !== "unauthorized") banner(e.message); }
      setTimeout(tick, POLL_MS);
    };
    const dlqTick = async () => { await deadLetters(); setTimeout(dlqTick, DLQ_POLL_MS); };
    tick(); dlqTick();
  }

  function meta(title, o) {
    if (!o) return el("p", { class: "muted", text: `${title}: not in the bucket` });
    return el("div", {}, el("h2", { text: title }), el("dl", {},
      ...[["key", o.key], ["size", bytes(o.size)], ["ETag", o.etag], ...Object.entries(o.metadata)]
        .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
  }

  // The output played where the browser can: a ladder by hls.js (or natively, as Safari
  // does), a file by the video element itself.
  function player(d) {
    if (!d.play_url) return el("span");
    const video = el("video", { id: "player", controls: "", muted: "", playsinline: "", preload: "metadata" });
    if (d.poster_url) video.poster = d.poster_url;
    const ladder = new URL(d.play_url, location.href).pathname.endsWith(".m3u8");
    if (ladder && window.Hls && Hls.isSupported()) {
      const hls = new Hls({ enableWorker: false });
      hls.on(Hls.Events.ERROR, (_e, x) => { if (x.fatal) banner(`player: ${x.details}`); });
      hls.loadSource(d.play_url);
      hls.attachMedia(video);
      window.hevcqPlayer = hls;
    } else {
      video.src = d.play_url;
    }
    return el("div", {}, el("h2", { text: "Playback" }), video);
  }

  async function jobPage() {
    login(jobPage);
    const id = decodeURIComponent(location.pathname.split("/").pop());
    try {
      await health();
      const d = await api(`/api/jobs/${encodeURIComponent(id)}`);
      const j = d.job;
      const facts = [["source", j.key], ["pool", j.pool], ["state", j.state], ["reason", j.reason || ""],
        ["failure class", j.failure_class || ""], ["attempts", j.attempts], ["worker", j.worker],
        ["started", j.started_at || ""], ["finished", j.finished_at || ""], ["input", bytes(j.input_bytes)],
        ["output", bytes(j.output_bytes)], ["saved", bytes(j.saved_bytes)]];
      if (j.vmaf !== null && j.vmaf !== undefined) facts.push(["VMAF", `${j.vmaf.toFixed(2)} (worst 1 %: ${j.vmaf_low.toFixed(2)})`]);
      if (j.vmaf_neg !== null && j.vmaf_neg !== undefined) facts.push(["VMAF NEG", j.vmaf_neg.toFixed(2)]);
      if (j.xpsnr !== null && j.xpsnr !== undefined) facts.push(["XPSNR", `${j.xpsnr.toFixed(2)} dB (worst 1 %: ${j.xpsnr_low.toFixed(2)} dB)`]);
      if (j.crf !== null && j.crf !== undefined) facts.push(["CRF", j.crf]);
      if (j.predicted_bytes) facts.push(["predicted size", `${bytes(j.predicted_bytes)} (actual ${bytes(j.output_bytes)})`]);
      $("#job").replaceChildren(
        el("h2", { text: `${j.key} · ${j.pool}` }),
        el("dl", { id: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])),
        el("h2", { text: "Timings" }),
        el("dl", {}, ...Object.entries(d.timings_s).flatMap(([k, v]) => [el("dt", { text: k.replace(/_s$/, "") }), el("dd", { text: `${v.toFixed(2)} s` })])),
        player(d),
        meta("Source", d.source), meta("Output", d.output),
        el("h2", { text: "Versions" }),
        el("table", {}, el("tbody", {}, ...d.versions.map((v) => el("tr", {},
          el("td", { text: v.etag }), el("td", { text: v.settings_hash }), el("td", { text: v.state }), el("td", { text: v.finished_at || "" }), el("td", { text: v.reason || "" }))))),
      );
    } catch (e) { banner(e.message); }
  }

  return { dashboard, jobPage };
})();
