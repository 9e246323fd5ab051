// The skyscene review page (plain JavaScript, no libraries, no network assets).
//
// The token is kept in sessionStorage and goes out only as "Authorization: Bearer ...".
// The queue is GET /api/candidates?sort=priority&unlabelled_by=me (highest active-learning
// priority first). The next PREFETCH candidates' detail, light curve and three PNG stamps
// (in the current stretch, fetched with the token and decoded as Image objects) are loaded
// ahead, so that moving on shows a candidate without waiting for the network.
// Each transition's time (key press to the next painted frame) is kept in
// window.skyscene.timings (milliseconds) for the browser test and the docs.
"use strict";

(function () {
  const TOKEN_KEY = "skyscene.token";
  const STRETCH_KEY = "skyscene.stretch";
  const KINDS = ["science", "reference", "difference"];
  const STRETCHES = ["zscale", "asinh", "linear"];
  const PREFETCH = 6; // candidates ahead (and 1 behind) whose data and stamps are kept ready
  const PAGE = 50; // queue page size
  const KEEP = 40; // candidates' stamps kept decoded around the current one
  const BANDS = { 1: ["g", "#2e9d4f"], 2: ["r", "#d1423f"], 3: ["i", "#8a5a1f"] };
  const KEY_FEATURES = [
    ["rb", "rb", 3],
    ["spread", "spread", 3],
    ["priority", "priority", 3],
    ["magpsf", "magpsf", 2],
    ["sigmapsf", "σ magpsf", 3],
    ["scorr", "S/N (scorr)", 1],
    ["diffmaglim", "diffmaglim", 2],
    ["fwhm", "fwhm", 2],
    ["elong", "elong", 2],
    ["isdiffpos", "isdiffpos", null],
    ["sharpness", "sharpness", 2],
    ["roundness", "roundness", 2],
    ["dipole", "dipole", 2],
    ["nbad", "nbad", 0],
    ["nneg", "nneg", 0],
    ["sumrat", "sumrat", 2],
    ["distnr", "distnr", 1],
    ["magnr", "magnr", 2],
    ["mindtoedge", "mindtoedge", 1],
  ];

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    me: null,
    queue: [], // list items in priority order (the server's snapshot, extended as needed)
    seen: new Set(), // candids (strings) in the queue
    index: -1,
    total: null, // unlabelled-by-me candidates when the queue was first read
    exhausted: false,
    loadingMore: null,
    stretch: STRETCHES.includes(sessionStorage.getItem(STRETCH_KEY))
      ? sessionStorage.getItem(STRETCH_KEY)
      : "zscale",
    details: new Map(), // candid -> Promise(detail)
    curves: new Map(), // objectId -> Promise(light curve)
    stamps: new Map(), // candid|kind|stretch -> {promise, img, url}
    myLabels: new Map(), // candid -> {id, value} (this session's and the history's current)
    undo: [], // this session's labels, newest last: {candid, promise(label)}
    labelled: 0, // labels given this session (minus those undone)
    history: [],
    historyTotal: 0,
    pending: null, // a transition being measured: {t0, candid}
  };

  // ------------------------------------------------------------------ API
  class HttpError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
    }
  }

  // Candidate ids are 64-bit integers, beyond JavaScript's exact integers (2^53): they are
  // kept as strings, read from the JSON source text (no rounding).
  function parseJSON(text) {
    let sourceSeen = false;
    const value = JSON.parse(text, function (key, v, context) {
      if (context && typeof context.source === "string") sourceSeen = true;
      if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v) && context &&
          /^-?\d+$/.test(context.source)) {
        return context.source;
      }
      return v;
    });
    if (sourceSeen || !/\d{16}/.test(text)) return value;
    // An engine without JSON.parse source access: quote long integers before parsing.
    return JSON.parse(text.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"'));
  }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    headers.Authorization = "Bearer " + state.token;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    });
    if (options.raw && response.ok) return response;
    const text = await response.text();
    let data = null;
    try {
      data = text ? parseJSON(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.detail !== undefined ? JSON.stringify(data.detail) : text;
      if (response.status === 401 && !options.login) {
        logout("session ended (" + detail + "): log in again");
      }
      throw new HttpError(response.status, detail);
    }
    return data;
  }

  const key = (candid) => String(candid);

  // A cached request: {promise, done, value}; a failed one is dropped (asked again later).
  function cached(map, k, path) {
    let entry = map.get(k);
    if (!entry) {
      entry = { done: false, value: null };
      entry.promise = api(path).then((value) => {
        entry.done = true;
        entry.value = value;
        return value;
      }, (err) => {
        map.delete(k);
        throw err;
      });
      map.set(k, entry);
    }
    return entry;
  }

  function detail(candid) {
    return cached(state.details, key(candid), `/api/candidates/${key(candid)}`).promise;
  }

  function curve(objectId) {
    if (!objectId) return Promise.resolve(null);
    return cached(state.curves, objectId, `/api/objects/${encodeURIComponent(objectId)}`).promise;
  }

  // A stamp: fetched with the token (an <img src> cannot send it), turned into a blob URL
  // and decoded, so that showing it costs no network and no decoding.
  function stamp(candid, kind, stretch) {
    const k = `${key(candid)}|${kind}|${stretch}`;
    let entry = state.stamps.get(k);
    if (!entry) {
      entry = { img: null, url: null, missing: false };
      entry.promise = api(
        `/api/candidates/${key(candid)}/cutouts/${kind}.png?stretch=${stretch}`, { raw: true }
      )
        .then((response) => response.blob())
        .then(async (blob) => {
          entry.url = URL.createObjectURL(blob);
          const img = new Image();
          img.alt = kind;
          img.className = "stamp-img";
          img.src = entry.url;
          await img.decode();
          entry.img = img;
          return entry;
        })
        .catch((err) => {
          if (err instanceof HttpError && err.status === 404) {
            entry.missing = true;
            return entry;
          }
          state.stamps.delete(k);
          throw err;
        });
      state.stamps.set(k, entry);
    }
    return entry;
  }

  function dropStamps() {
    // keep only the candidates around the current one decoded (blob URLs revoked)
    const keep = new Set();
    for (let i = state.index - KEEP / 2; i <= state.index + KEEP / 2; i++) {
      if (i >= 0 && i < state.queue.length) keep.add(key(state.queue[i].candid));
    }
    for (const [k, entry] of state.stamps) {
      if (!keep.has(k.split("|")[0]) && entry.img) {
        URL.revokeObjectURL(entry.url);
        state.stamps.delete(k);
      }
    }
  }

  function prefetch(index) {
    const wanted = [];
    for (let i = index + 1; i <= index + PREFETCH; i++) wanted.push(i);
    wanted.push(index - 1);
    for (const i of wanted) {
      if (i < 0 || i >= state.queue.length) continue;
      const item = state.queue[i];
      detail(item.candid).catch(() => {});
      curve(item.objectId).catch(() => {});
      for (const kind of KINDS) stamp(item.candid, kind, state.stretch).promise.catch(() => {});
    }
    if (!state.exhausted && index + PREFETCH + 2 >= state.queue.length) loadMore();
    dropStamps();
  }

  // ------------------------------------------------------------------ queue
  async function loadMore() {
    if (state.loadingMore || state.exhausted) return state.loadingMore;
    // The server's unlabelled-by-me list is the queue's items not labelled yet, then new
    // ones: ask from there on (and skip any already queued).
    const offset = state.queue.filter((it) => !state.myLabels.has(key(it.candid))).length;
    state.loadingMore = api(
      `/api/candidates?sort=priority&unlabelled_by=me&limit=${PAGE}&offset=${offset}`
    )
      .then((page) => {
        if (state.total === null) state.total = page.total;
        let added = 0;
        for (const item of page.items) {
          const k = key(item.candid);
          if (state.seen.has(k)) continue;
          state.seen.add(k);
          state.queue.push(item);
          added++;
        }
        if (page.items.length < PAGE || added === 0) state.exhausted = true;
        return added;
      })
      .finally(() => {
        state.loadingMore = null;
      });
    return state.loadingMore;
  }

  // ------------------------------------------------------------------ showing
  function fmt(value, digits) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") {
      if (digits === null || digits === undefined) return String(value);
      return value.toFixed(digits);
    }
    return String(value);
  }

  function band(fid) {
    return (BANDS[fid] || [String(fid), "#555"])[0];
  }

  function servedScore(item, d) {
    if (item.rb !== null && item.rb !== undefined) return item;
    const scores = (d && d.scores) || [];
    return scores.length ? { rb: scores[scores.length - 1].score, spread: scores[scores.length - 1].spread,
      priority: scores[scores.length - 1].priority } : item;
  }

  function fillTable(tbody, rows) {
    const frag = document.createDocumentFragment();
    for (const [name, value] of rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = name;
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(th, td);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
  }

  function showDetail(item, d) {
    const f = Object.assign({}, item, (d && d.features) || {});
    const s = servedScore(item, d);
    Object.assign(f, { rb: s.rb, spread: s.spread, priority: s.priority });
    const rows = KEY_FEATURES.map(([name, label, digits]) => [label, fmt(f[name], digits)]);
    rows.unshift(["band", band(f.fid)], ["MJD", fmt(f.jd - 2400000.5, 4)],
      ["RA, Dec", `${fmt(f.ra, 5)}, ${fmt(f.dec, 5)}`]);
    fillTable($("features").tBodies[0], rows);
    if (d) {
      const all = Object.keys(d.features).sort().map((k) => [k, fmt(d.features[k], null)]);
      for (const sc of d.scores || []) {
        all.push([`rb ${sc.model_version}`, fmt(sc.score, 4)]);
      }
      fillTable($("allfeatures").tBodies[0], all);
    }
    const labels = (d && d.labels ? d.labels : []).filter((l) => l.current);
    const mine = state.myLabels.get(key(item.candid));
    const parts = [];
    parts.push(mine ? `my label: ${mine.value}` : "not labelled by me");
    if (labels.length) parts.push("labels: " + labels.map((l) => `${l.user} ${l.value}`).join(", "));
    if (d && d.consensus) parts.push(`consensus: ${d.consensus}`);
    $("labels").textContent = parts.join(" · ");
    $("labels").dataset.mine = mine ? mine.value : "";
  }

  function showStamps(candid) {
    let ready = 0;
    for (const kind of KINDS) {
      const box = $(`stamp-${kind}`);
      const entry = stamp(candid, kind, state.stretch);
      if (entry.img) {
        if (box.firstChild !== entry.img) box.replaceChildren(entry.img);
        box.classList.remove("waiting");
        ready++;
      } else if (entry.missing) {
        box.replaceChildren(document.createTextNode("no cutout"));
        box.classList.remove("waiting");
        ready++;
      } else {
        box.replaceChildren();
        box.classList.add("waiting");
        entry.promise.then(() => {
          if (current() && key(current().candid) === key(candid)) complete();
        }, () => {});
      }
    }
    return ready === KINDS.length;
  }

  function current() {
    return state.index >= 0 && state.index < state.queue.length ? state.queue[state.index] : null;
  }

  function showProgress() {
    const n = state.queue.length;
    const left = state.total === null ? "?" : Math.max(0, state.total - state.labelled);
    $("progress").textContent =
      `${state.index + 1} / ${n}${state.exhausted ? "" : "+"} · labelled ${state.labelled} · ${left} to go`;
  }

  // Show state.queue[index]: synchronous when prefetched; the rest fills in as it arrives.
  function show(index, t0) {
    if (index < 0) index = 0;
    if (index >= state.queue.length) {
      if (!state.exhausted) {
        loadMore().then(() => show(Math.min(index, state.queue.length), t0), fail);
        return;
      }
      state.index = state.queue.length;
      $("title").textContent = state.queue.length ? "the queue is done: every candidate labelled or seen"
        : "nothing to review: the queue is empty";
      document.body.dataset.candid = "";
      for (const kind of KINDS) $(`stamp-${kind}`).replaceChildren();
      showProgress();
      return;
    }
    state.index = index;
    const item = state.queue[index];
    const k = key(item.candid);
    state.pending = { t0: t0 === undefined ? performance.now() : t0, candid: k };
    document.body.dataset.candid = k;
    document.body.dataset.ready = "0";
    $("title").textContent = `${item.objectId || "(no object)"} · candid ${k} · ${item.pair_id}`;
    showDetail(item, null);
    showStamps(item.candid);
    showProgress();
    detail(item.candid).then((d) => {
      if (state.pending && state.pending.candid === k) showDetail(item, d);
      if (d && d.my_label && !state.myLabels.has(k)) {
        // a label from an earlier session: known from the detail
        const own = (d.labels || []).filter((l) => l.user === state.me.name && l.current);
        if (own.length) state.myLabels.set(k, { id: own[0].id, value: own[0].value });
        if (current() === item) showDetail(item, d);
      }
      complete();
    }, fail);
    curve(item.objectId).then((lc) => {
      if (current() === item) drawCurve(lc, k);
      complete();
    }, fail);
    prefetch(index);
    complete();
  }

  // Called whenever a piece arrives: when everything of the current candidate is on the
  // page, the transition is timed to the next painted frame.
  function complete() {
    const p = state.pending;
    const item = current();
    if (!p || !item || key(item.candid) !== p.candid || p.done) return;
    const d = state.details.get(p.candid);
    const lc = state.curves.get(item.objectId);
    if (!d || !d.done || (item.objectId && (!lc || !lc.done))) return;
    if (!showStamps(item.candid)) return;
    p.done = true;
    requestAnimationFrame(() => {
      // the frame with the candidate is being painted: time to just after it
      setTimeout(() => {
        const ms = performance.now() - p.t0;
        window.skyscene.timings.push({ candid: p.candid, ms });
        if (state.pending === p) document.body.dataset.ready = "1";
      }, 0);
    });
  }

  // ------------------------------------------------------------------ light curve
  function drawCurve(lc, candid) {
    const canvas = $("lightcurve");
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 460;
    const h = canvas.clientHeight || 280;
    if (canvas.width !== Math.round(w * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#222";
    $("lc-object").textContent = lc ? lc.objectId : "";
    const dets = (lc && lc.detections) || [];
    const lims = (lc && lc.upper_limits) || [];
    const points = dets.filter((p) => p.magpsf !== null && p.jd !== null);
    const limits = lims.filter((p) => p.diffmaglim !== null && p.jd !== null);
    canvas.dataset.detections = String(points.length);
    canvas.dataset.limits = String(limits.length);
    if (!points.length && !limits.length) {
      ctx.fillText("no light curve", w / 2 - 40, h / 2);
      return;
    }
    const mjd = (jd) => jd - 2400000.5;
    const xs = points.map((p) => mjd(p.jd)).concat(limits.map((p) => mjd(p.jd)));
    const ys = points.map((p) => p.magpsf + (p.sigmapsf || 0)).concat(
      points.map((p) => p.magpsf - (p.sigmapsf || 0)), limits.map((p) => p.diffmaglim));
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const xpad = Math.max((x1 - x0) * 0.08, 0.5);
    const ypad = Math.max((y1 - y0) * 0.12, 0.15);
    x0 -= xpad; x1 += xpad; y0 -= ypad; y1 += ypad + (limits.length ? 0.3 : 0);
    const L = 52, R = 12, T = 12, B = 36;
    const X = (x) => L + ((x - x0) / (x1 - x0)) * (w - L - R);
    const Y = (y) => T + ((y - y0) / (y1 - y0)) * (h - T - B); // brighter (smaller) up
    // axes and ticks
    ctx.strokeStyle = "#999";
    ctx.lineWidth = 1;
    ctx.strokeRect(L, T, w - L - R, h - T - B);
    ctx.fillStyle = "#444";
    for (const t of ticks(x0, x1, 5)) {
      ctx.beginPath(); ctx.moveTo(X(t), h - B); ctx.lineTo(X(t), h - B + 4); ctx.stroke();
      const s = String(Math.round(t * 100) / 100);
      const tw = ctx.measureText(s).width;
      ctx.fillText(s, Math.min(w - tw - 2, Math.max(2, X(t) - tw / 2)), h - B + 16);
    }
    for (const t of ticks(y0, y1, 5)) {
      ctx.beginPath(); ctx.moveTo(L - 4, Y(t)); ctx.lineTo(L, Y(t)); ctx.stroke();
      const s = t.toFixed(1);
      ctx.fillText(s, L - 7 - ctx.measureText(s).width, Y(t) + 4);
    }
    ctx.fillText("MJD", w / 2, h - 4);
    ctx.save();
    ctx.translate(13, h / 2 + 12);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("mag", 0, 0);
    ctx.restore();
    // upper limits: a bar at the limit and an arrow towards fainter magnitudes
    for (const p of limits) {
      const [, colour] = BANDS[p.fid] || ["?", "#555"];
      const x = X(mjd(p.jd)), y = Y(p.diffmaglim);
      ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y); ctx.moveTo(x, y);
      ctx.lineTo(x, y + 14); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(x - 4, y + 10); ctx.lineTo(x, y + 16); ctx.lineTo(x + 4, y + 10);
      ctx.closePath(); ctx.fill();
    }
    // detections with error bars (hollow: negative difference), ringed: this candidate
    for (const p of points) {
      const [, colour] = BANDS[p.fid] || ["?", "#555"];
      const x = X(mjd(p.jd)), y = Y(p.magpsf);
      const e = p.sigmapsf || 0;
      ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(x, Y(p.magpsf - e)); ctx.lineTo(x, Y(p.magpsf + e));
      ctx.moveTo(x - 3, Y(p.magpsf - e)); ctx.lineTo(x + 3, Y(p.magpsf - e));
      ctx.moveTo(x - 3, Y(p.magpsf + e)); ctx.lineTo(x + 3, Y(p.magpsf + e)); ctx.stroke();
      ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI);
      if (p.isdiffpos === "f" || p.isdiffpos === "0") ctx.stroke(); else ctx.fill();
      if (key(p.candid) === candid) {
        ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.arc(x, y, 8, 0, 2 * Math.PI); ctx.stroke();
      }
    }
  }

  function ticks(lo, hi, n) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(t);
    return out;
  }

  // ------------------------------------------------------------------ labels
  function status(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function fail(err) {
    if (err instanceof HttpError && err.status === 401) return;
    status(String(err && err.message ? err.message : err), true);
  }

  function label(value) {
    const item = current();
    if (!item) return;
    const k = key(item.candid);
    const t0 = performance.now();
    const comment = $("comment").value.trim() || null;
    $("comment").value = "";
    const wasMine = state.myLabels.get(k);
    const promise = api(`/api/candidates/${k}/labels`, { method: "POST", body: { value, comment } });
    const entry = { candid: k, promise, previous: wasMine || null };
    state.undo.push(entry);
    state.myLabels.set(k, { id: null, value, promise });
    if (!wasMine) state.labelled++;
    document.body.dataset.labelsPending = String(Number(document.body.dataset.labelsPending || 0) + 1);
    promise
      .then((row) => {
        entry.id = row.id;
        const mine = state.myLabels.get(k);
        if (mine && mine.promise === promise) state.myLabels.set(k, { id: row.id, value: row.value });
        state.details.delete(k); // labels and consensus changed
        status(`labelled ${item.objectId || k} ${value}`);
        refreshHistory();
      }, (err) => {
        state.undo.splice(state.undo.indexOf(entry), 1);
        if (wasMine) state.myLabels.set(k, wasMine); else { state.myLabels.delete(k); state.labelled--; }
        fail(err);
        showProgress();
      })
      .finally(() => {
        document.body.dataset.labelsPending = String(Number(document.body.dataset.labelsPending) - 1);
      });
    show(state.index + 1, t0); // move on at once: the label goes out in the background
  }

  async function undo() {
    let entry = state.undo.pop();
    let labelId;
    let candid;
    if (entry) {
      candid = entry.candid;
      try {
        labelId = (await entry.promise).id;
      } catch (err) {
        return; // it was never recorded
      }
    } else {
      // nothing labelled in this session: the newest current label of the history
      const last = state.history.find((h) => h.current);
      if (!last) { status("nothing to undo"); return; }
      labelId = last.id;
      candid = key(last.candid);
    }
    document.body.dataset.labelsPending = String(Number(document.body.dataset.labelsPending || 0) + 1);
    try {
      const result = await api(`/api/labels/${labelId}`, { method: "DELETE" });
      state.details.delete(candid);
      const previous = entry && entry.previous;
      if (result && result.my_label) {
        state.myLabels.set(candid, previous && previous.value === result.my_label ? previous
          : { id: null, value: result.my_label });
      } else {
        state.myLabels.delete(candid);
        state.labelled = Math.max(0, state.labelled - 1);
      }
      status(`undone: label ${labelId} of ${candid}`);
      refreshHistory();
      // back to the candidate whose label was undone
      let i = state.queue.findIndex((it) => key(it.candid) === candid);
      if (i < 0) {
        const d = await detail(candid);
        state.queue.splice(state.index + 0, 0, { candid, objectId: d.objectId, pair_id: d.pair_id,
          ...d.features });
        state.seen.add(candid);
        i = state.index;
      }
      show(i);
    } catch (err) {
      if (entry) state.undo.push(entry);
      fail(err);
    } finally {
      document.body.dataset.labelsPending = String(Number(document.body.dataset.labelsPending) - 1);
    }
  }

  async function refreshHistory() {
    try {
      const page = await api("/api/labels?user=me&limit=50");
      state.history = page.items;
      state.historyTotal = page.total;
      for (const h of page.items) {
        const k = key(h.candid);
        if (h.current && !state.myLabels.has(k)) state.myLabels.set(k, { id: h.id, value: h.value });
      }
      const frag = document.createDocumentFragment();
      for (const h of page.items) {
        const li = document.createElement("li");
        li.className = `${h.value}${h.current ? "" : " superseded"}`;
        li.dataset.candid = key(h.candid);
        const when = h.created_at ? new Date(h.created_at).toLocaleTimeString() : "";
        li.textContent = `${h.value} · ${key(h.candid)} · ${when}${h.comment ? " · " + h.comment : ""}`;
        li.title = h.current ? "current" : "superseded by a newer label";
        li.addEventListener("click", () => openCandid(key(h.candid)));
        frag.append(li);
      }
      $("history").replaceChildren(frag);
      $("history-total").textContent = `(${page.total})`;
    } catch (err) {
      fail(err);
    }
  }

  async function openCandid(candid) {
    let i = state.queue.findIndex((it) => key(it.candid) === candid);
    if (i < 0) {
      const d = await detail(candid);
      state.queue.splice(state.index + 1, 0, { candid, objectId: d.objectId, pair_id: d.pair_id,
        ...d.features });
      state.seen.add(candid);
      i = state.index + 1;
    }
    show(i);
  }

  function setStretch(value) {
    if (!STRETCHES.includes(value)) return;
    state.stretch = value;
    sessionStorage.setItem(STRETCH_KEY, value);
    for (const input of document.querySelectorAll('input[name="stretch"]')) {
      input.checked = input.value === value;
    }
    if (current()) show(state.index);
  }

  // ------------------------------------------------------------------ keys
  function onKey(event) {
    if ($("app").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" && target.type === "text" || target.tagName === "TEXTAREA")) {
      if (event.key === "Escape" || event.key === "Enter") target.blur();
      return;
    }
    const actions = {
      r: () => label("real"),
      b: () => label("bogus"),
      s: () => label("unsure"),
      u: () => undo(),
      ArrowRight: () => show(state.index + 1),
      ArrowDown: () => show(state.index + 1),
      ArrowLeft: () => show(Math.max(0, state.index - 1)),
      ArrowUp: () => show(Math.max(0, state.index - 1)),
      1: () => setStretch("zscale"),
      2: () => setStretch("asinh"),
      3: () => setStretch("linear"),
      c: () => $("comment").focus(),
    };
    const action = actions[event.key] || actions[event.key.toLowerCase()];
    if (!action || event.repeat && "rbsu".includes(event.key)) return;
    event.preventDefault();
    action();
  }

  // ------------------------------------------------------------------ log in / out
  function resetState() {
    for (const entry of state.stamps.values()) if (entry.url) URL.revokeObjectURL(entry.url);
    Object.assign(state, {
      me: null, queue: [], seen: new Set(), index: -1, total: null, exhausted: false,
      loadingMore: null, details: new Map(), curves: new Map(), stamps: new Map(),
      myLabels: new Map(), undo: [], labelled: 0, history: [], historyTotal: 0, pending: null,
    });
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    resetState();
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function start(token, fromForm) {
    state.token = token;
    let me;
    try {
      me = await api("/api/me", { login: true });
    } catch (err) {
      const why = err instanceof HttpError && err.status === 401 ? "unknown or revoked token" : String(err.message);
      logout(fromForm ? why : "");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.me = me;
    $("whoami").textContent = `${me.name} (${me.role})`;
    $("login").hidden = true;
    $("app").hidden = false;
    setStretch(state.stretch);
    status("");
    await refreshHistory();
    try {
      await loadMore();
    } catch (err) {
      fail(err);
      return;
    }
    show(0);
  }

  function init() {
    window.skyscene = { timings: [], state };
    document.body.dataset.labelsPending = "0";
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (token) start(token, true);
    });
    $("logout").addEventListener("click", () => logout(""));
    for (const button of document.querySelectorAll("button[data-label]")) {
      button.addEventListener("click", () => label(button.dataset.label));
    }
    $("undo").addEventListener("click", () => undo());
    $("prev").addEventListener("click", () => show(Math.max(0, state.index - 1)));
    $("next").addEventListener("click", () => show(state.index + 1));
    for (const input of document.querySelectorAll('input[name="stretch"]')) {
      input.addEventListener("change", () => setStretch(input.value));
    }
    document.addEventListener("keydown", onKey);
    window.addEventListener("resize", () => {
      const item = current();
      if (item) curve(item.objectId).then((lc) => drawCurve(lc, key(item.candid)), () => {});
    });
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token, false); else logout("");
  }

  document.addEventListener("DOMContentLoaded", init);
})();
