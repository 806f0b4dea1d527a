// unitalker viewer page: upload / record audio, animate, play in sync, plot curves,
// download exports, and a live microphone mode over the WebSocket stream.
// Talks only to the server that served it (same origin); nothing is fetched elsewhere.
"use strict";

const $ = (sel) => document.querySelector(sel);
const S = {
  info: null,            // GET /v1/models -> models[0]
  heads: {},             // name -> head info
  file: null,            // the audio File / Blob to animate
  result: null,          // {head: {fps, kind, channels, data: Float32Array, T, C}}
  meshes: {},            // convention -> {neutral, faces, basis} (Float32Array / Uint32Array)
  viewHead: null,
  curveHead: null,
  shownFrame: -1,
  framesDrawn: 0,
  mode: "clip",          // "clip" or "live"
  live: null,            // {ws, ctx, stream, node, frames: {head: [Float32Array]}, received}
  downloads: 0,
};
window.__unitalker = S;  // for tests and debugging

let viewer = null;

function setStatus(text, state) {
  $("#status").textContent = text;
  if (state) document.body.dataset.state = state;
}

async function apiError(r) {
  try { const j = await r.json(); return `${r.status} ${j.error}: ${j.detail}`; }
  catch (e) { return `${r.status} ${r.statusText}`; }
}

// ---- the binary array container (see unitalker/serve/protocol.py) ------------------------
function unpackArrays(buf) {
  const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 4));
  if (magic !== "UTKA") throw new Error("bad array container");
  const h = new DataView(buf).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, h)));
  const base = 8 + h, arrays = {};
  for (const e of header.arrays) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const Ctor = e.dtype === "float32" ? Float32Array : Uint32Array;
    arrays[e.name] = { shape: e.shape, data: new Ctor(buf, base + e.offset, n) };
  }
  return { arrays, meta: header.meta };
}

// ---- setup ---------------------------------------------------------------------------
async function init() {
  try { viewer = new MeshViewer($("#mesh")); }
  catch (e) { setStatus(`WebGL unavailable: ${e.message}`, "error"); }
  const r = await fetch("/v1/models");
  if (!r.ok) { setStatus(await apiError(r), "error"); return; }
  const info = (await r.json()).models[0];
  S.info = info;
  $("#model-name").textContent = `model: ${info.name}`;
  const box = $("#heads");
  for (const h of info.heads) {
    S.heads[h.name] = h;
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" value="${h.name}" checked> ${h.name} <span class="muted">${h.kind}${h.has_mesh ? ", mesh" : ""}</span>`;
    box.appendChild(label);
  }
  const sel = $("#identity");
  for (const id of info.identities) {
    const o = document.createElement("option");
    o.value = id; o.textContent = id;
    if (id === info.default_identity) o.selected = true;
    sel.appendChild(o);
  }
  $("#file").addEventListener("change", (e) => { if (e.target.files[0]) setFile(e.target.files[0]); });
  $("#record").addEventListener("click", toggleRecord);
  $("#animate").addEventListener("click", animate);
  $("#play").addEventListener("click", () => { S.mode = "clip"; $("#player").currentTime = 0; $("#player").play(); });
  $("#view-head").addEventListener("change", (e) => selectView(e.target.value));
  $("#curve-head").addEventListener("change", (e) => { S.curveHead = e.target.value; drawCurves(true); });
  $("#live").addEventListener("click", () => (S.live ? stopLive() : startLive()));
  for (const b of document.querySelectorAll("#downloads button"))
    b.addEventListener("click", () => download(b.dataset.format));
  window.addEventListener("resize", () => { drawCurves(true); if (viewer) viewer.draw(); });
  if (viewer) viewer.draw();
  setStatus("choose or record audio", "idle");
  requestAnimationFrame(tick);
}

function selectedHeads() {
  return [...document.querySelectorAll("#heads input:checked")].map((i) => i.value);
}

function setFile(file) {
  S.file = file;
  $("#file-name").textContent = `${file.name || "recording"} (${(file.size / 1024).toFixed(0)} kB)`;
  $("#player").src = URL.createObjectURL(file);
  $("#animate").disabled = false;
  for (const b of document.querySelectorAll("#downloads button")) b.disabled = false;
  setStatus("ready to animate", "idle");
}

// ---- recording -------------------------------------------------------------------------
let recorder = null;
async function toggleRecord() {
  const btn = $("#record");
  if (recorder) { recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = recorder.mimeType || "audio/webm";
      const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      setFile(new File(chunks, `recording.${ext}`, { type }));
      recorder = null; btn.textContent = "● Record"; btn.classList.remove("on");
    };
    recorder.start();
    btn.textContent = "■ Stop"; btn.classList.add("on");
    setStatus("recording…");
  } catch (e) { setStatus(`microphone: ${e.message}`, "error"); }
}

// ---- offline animation ------------------------------------------------------------------
function form(format) {
  const fd = new FormData();
  fd.append("audio", S.file, S.file.name || "audio.webm");
  fd.append("heads", selectedHeads().join(","));
  fd.append("identity", $("#identity").value);
  fd.append("format", format);
  const words = $("#words").value.trim();
  if (words) fd.append("text", words);  // the lips close on the words' bilabials
  return fd;
}

async function animate() {
  if (!S.file) return;
  if (!selectedHeads().length) { setStatus("choose at least one head", "error"); return; }
  setStatus("animating…", "busy");
  $("#animate").disabled = true;
  try {
    const r = await fetch("/v1/animate", { method: "POST", body: form("bin") });
    if (!r.ok) { setStatus(await apiError(r), "error"); return; }
    const { arrays, meta } = unpackArrays(await r.arrayBuffer());
    S.result = {};
    for (const [h, a] of Object.entries(arrays)) {
      const hm = meta.heads[h];
      S.result[h] = { ...hm, data: a.data, T: a.shape[0], C: a.shape[1] };
    }
    await loadMeshes(Object.keys(S.result));
    fillViewSelects(Object.keys(S.result));
    S.mode = "clip"; S.shownFrame = -1;
    $("#play").disabled = false;
    setStatus(`animated ${meta.seconds.toFixed(2)} s in ${meta.inference_s.toFixed(2)} s — press play`, "ready");
  } catch (e) {
    setStatus(`error: ${e.message}`, "error");
  } finally { $("#animate").disabled = false; }
}

async function loadMeshes(heads) {
  for (const h of heads) {
    if (!S.heads[h] || !S.heads[h].has_mesh || S.meshes[h]) continue;
    const r = await fetch(`/v1/mesh/${encodeURIComponent(h)}?format=bin`);
    if (!r.ok) continue;
    const { arrays } = unpackArrays(await r.arrayBuffer());
    S.meshes[h] = {
      neutral: new Float32Array(arrays.neutral.data),
      faces: arrays.faces ? arrays.faces.data : null,
      basis: arrays.basis ? arrays.basis.data : null,
      pos: new Float32Array(arrays.neutral.data.length),
      display: null,
    };
    if (arrays.display_rest) {  // synth heads: cavity, teeth, tongue, eyes (render-only)
      const rest = arrays.display_rest.data;
      S.meshes[h].display = {
        rest, faces: arrays.display_faces.data, colors: arrays.display_colors.data,
        blink: arrays.display_blink.data, indptr: arrays.display_indptr.data,
        indices: arrays.display_indices.data, data: arrays.display_data.data,
        neutral: S.meshes[h].neutral, out: new Float32Array(rest.length),
        smooth: arrays.display_smooth_indptr ? {
          indptr: arrays.display_smooth_indptr.data, indices: arrays.display_smooth_indices.data,
          data: arrays.display_smooth_data.data,
        } : null,
      };
    }
  }
}

function fillViewSelects(heads) {
  const vs = $("#view-head"), cs = $("#curve-head");
  vs.innerHTML = ""; cs.innerHTML = "";
  const meshHeads = heads.filter((h) => S.meshes[h]);
  for (const h of meshHeads) vs.add(new Option(h, h));
  const curveHeads = heads.filter((h) => S.heads[h] && S.heads[h].kind !== "vertices");
  for (const h of curveHeads) cs.add(new Option(h, h));
  if (!meshHeads.length) vs.add(new Option("(no head with a mesh)", ""));
  if (!curveHeads.length) cs.add(new Option("(no blendshape head)", ""));
  selectView(meshHeads[0] || null);
  S.curveHead = curveHeads[0] || null;
  drawCurves(true);
}

function selectView(h) {
  S.viewHead = h || null;
  S.shownFrame = -1;
  if (!viewer) return;
  if (!S.viewHead) { viewer.clear(); return; }
  const m = S.meshes[h];
  if (m.display) viewer.setMesh(m.display.rest, m.display.faces, m.display.colors);
  else viewer.setMesh(m.neutral, m.faces);
  viewer.draw();
}

/** Vertices of frame `frame` (a Float32Array of channels) of head h, into the mesh's buffer. */
function frameVertices(h, frame, t) {
  const m = S.meshes[h];
  const v = m.basis ? evalRig(m.neutral, m.basis, frame, m.pos) : frame;
  if (!m.display) return v;
  const idle = $("#idle");
  const blink = idle && idle.checked ? blinkAt(t) : 0;  // render-only, never in the data
  return evalDisplay(m.display, v, blink, m.display.out);
}

function currentFrame(h) {
  if (S.mode === "live") {
    const fr = S.live && S.live.frames[h];
    return fr && fr.length ? [fr.length - 1, fr[fr.length - 1]] : [-1, null];
  }
  const r = S.result && S.result[h];
  if (!r) return [-1, null];
  const t = $("#player").currentTime;
  const i = Math.max(0, Math.min(r.T - 1, Math.floor(t * r.fps)));
  return [i, r.data.subarray(i * r.C, (i + 1) * r.C)];
}

function tick() {
  if (viewer && S.viewHead && S.meshes[S.viewHead]) {
    const [i, frame] = currentFrame(S.viewHead);
    const t = S.mode === "live" ? performance.now() / 1000 : $("#player").currentTime;
    const m = S.meshes[S.viewHead];
    // dressed heads redraw every tick while blinking is on (the blink runs on its own clock)
    const live = m.display && $("#idle") && $("#idle").checked ? `@${Math.round(t * 30)}` : "";
    const key = (S.mode === "live" ? `live${i}` : `${i}`) + live;
    if (frame && key !== S.shownFrame) {
      viewer.setVertices(frameVertices(S.viewHead, frame, t));
      viewer.draw();
      S.shownFrame = key; S.framesDrawn++;
      $("#frame-info").textContent = `frame ${i}`;
    }
  }
  drawCurves(false);
  requestAnimationFrame(tick);
}

// ---- curves (canvas 2D) -------------------------------------------------------------------
const COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6"];
let curveCache = null;

function curveSource() {
  const h = S.curveHead;
  if (!h) return null;
  if (S.mode === "live") {
    const fr = S.live && S.live.frames[h];
    if (!fr || !fr.length) return null;
    const win = fr.slice(-150), C = win[0].length, data = new Float32Array(win.length * C);
    win.forEach((f, i) => data.set(f, i * C));
    return { T: win.length, C, data, channels: S.heads[h].channels, cursor: null };
  }
  const r = S.result && S.result[h];
  if (!r) return null;
  return { T: r.T, C: r.C, data: r.data, channels: r.channels, cursor: $("#player").currentTime * r.fps };
}

function drawCurves(force) {
  const c = $("#curves"), g = c.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(c.clientWidth * dpr), hgt = Math.round(c.clientHeight * dpr);
  if (c.width !== w || c.height !== hgt) { c.width = w; c.height = hgt; force = true; }
  const src = curveSource();
  g.clearRect(0, 0, w, hgt);
  if (!src || src.T < 1) { curveCache = null; return; }
  if (force || S.mode === "live" || !curveCache || curveCache.src !== src.data) {
    // Plot the 8 channels that move the most (by variance), scaled to their joint range.
    const { T, C, data } = src, stats = [];
    for (let k = 0; k < C; k++) {
      let m = 0, v = 0;
      for (let t = 0; t < T; t++) m += data[t * C + k];
      m /= T;
      for (let t = 0; t < T; t++) v += (data[t * C + k] - m) ** 2;
      stats.push([v, k]);
    }
    stats.sort((a, b) => b[0] - a[0]);
    const chans = stats.slice(0, 8).map((s) => s[1]);
    let lo = Infinity, hi = -Infinity;
    for (const k of chans) for (let t = 0; t < T; t++) { const x = data[t * C + k]; lo = Math.min(lo, x); hi = Math.max(hi, x); }
    if (hi - lo < 1e-6) { hi += 0.5; lo -= 0.5; }
    const off = document.createElement("canvas");
    off.width = w; off.height = hgt;
    const o = off.getContext("2d");
    o.lineWidth = 1.5 * dpr;
    o.font = `${11 * dpr}px sans-serif`;
    chans.forEach((k, j) => {
      o.strokeStyle = COLORS[j % COLORS.length];
      o.beginPath();
      for (let t = 0; t < T; t++) {
        const x = (T === 1 ? 0.5 : t / (T - 1)) * w, y = hgt - ((data[t * C + k] - lo) / (hi - lo)) * (hgt - 8 * dpr) - 4 * dpr;
        t ? o.lineTo(x, y) : o.moveTo(x, y);
      }
      o.stroke();
      o.fillStyle = COLORS[j % COLORS.length];
      o.fillText(src.channels ? src.channels[k] : `ch ${k}`, 6 * dpr, (14 + 13 * j) * dpr);
    });
    curveCache = { src: src.data, img: off };
  }
  g.drawImage(curveCache.img, 0, 0);
  if (src.cursor !== null && src.T > 1) {
    const x = Math.min(1, src.cursor / (src.T - 1)) * w;
    g.strokeStyle = "#fff"; g.lineWidth = dpr;
    g.beginPath(); g.moveTo(x, 0); g.lineTo(x, hgt); g.stroke();
  }
}

// ---- downloads -----------------------------------------------------------------------------
async function download(format) {
  if (!S.file) return;
  setStatus(`preparing ${format}…`, "busy");
  try {
    const r = await fetch("/v1/animate", { method: "POST", body: form(format) });
    if (!r.ok) { setStatus(await apiError(r), "error"); return; }
    const cd = r.headers.get("content-disposition") || "";
    const m = /filename="([^"]+)"/.exec(cd);
    const base = (S.file.name || "audio").replace(/\.[^.]+$/, "");
    const name = m ? m[1] : `${base}.${format}`;
    const blob = await r.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    S.downloads++;
    setStatus(`downloaded ${name}`, "ready");
  } catch (e) { setStatus(`download failed: ${e.message}`, "error"); }
}

// ---- live mode -----------------------------------------------------------------------------
async function startLive() {
  const heads = selectedHeads();
  if (!heads.length) { setStatus("choose at least one head", "error"); return; }
  const btn = $("#live");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    const srcNode = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "pcm16-writer", { processorOptions: { targetRate: 16000, chunk: 320 } });
    const mute = ctx.createGain(); mute.gain.value = 0;  // keep the graph pulling, silently
    srcNode.connect(node); node.connect(mute); mute.connect(ctx.destination);
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/v1/stream`);
    ws.binaryType = "arraybuffer";
    const L = { ws, ctx, stream, node, frames: {}, index: [], received: 0, sent: 0, ready: false, t0: 0, firstFrameMs: null };
    S.live = L;
    for (const h of heads) L.frames[h] = [];
    ws.onopen = () => ws.send(JSON.stringify({
      sample_rate: 16000, heads, identity: $("#identity").value,
      lookahead: parseFloat($("#lookahead").value) || 0.2, format: "binary",
    }));
    ws.onmessage = (e) => {
      if (typeof e.data === "string") {
        const m = JSON.parse(e.data);
        if (m.type === "ready") {
          L.ready = true; L.index = m.heads.map((x) => x.name);
          fillLiveView(heads);
          setStatus("live: speak", "live");
        } else if (m.type === "error") setStatus(`live: ${m.message}`, "error");
        else if (m.type === "done") setStatus(`live ended: ${Object.entries(m.frames).map(([k, v]) => `${k} ${v}`).join(", ")} frames`, "ready");
        return;
      }
      const dv = new DataView(e.data);
      const hi = dv.getUint32(4, true), n = dv.getUint32(12, true), c = dv.getUint32(16, true);
      const all = new Float32Array(e.data, 20, n * c), list = L.frames[L.index[hi]];
      for (let i = 0; i < n; i++) list.push(all.slice(i * c, (i + 1) * c));
      if (list.length > 600) list.splice(0, list.length - 600);  // keep 20 s
      if (L.firstFrameMs === null) L.firstFrameMs = performance.now() - L.t0;
      L.received += n;
      $("#live-info").textContent = `${L.received} frames, first after ${L.firstFrameMs.toFixed(0)} ms`;
    };
    ws.onclose = () => { if (S.live === L) stopLive(true); };
    node.port.onmessage = (e) => {
      if (L.ready && ws.readyState === WebSocket.OPEN) {
        if (!L.sent) L.t0 = performance.now();
        ws.send(e.data); L.sent++;
      }
    };
    S.mode = "live";
    btn.textContent = "■ Stop live"; btn.classList.add("on");
    setStatus("live: connecting…", "busy");
  } catch (e) { setStatus(`live: ${e.message}`, "error"); }
}

function fillLiveView(heads) {
  // Meshes for the live heads, then the same selects as offline.
  loadMeshes(heads).then(() => fillViewSelects(heads));
}

function stopLive(closed) {
  const L = S.live;
  if (!L) return;
  S.live = null;
  try { L.node.port.onmessage = null; L.ctx.close(); } catch (e) { /* already closed */ }
  L.stream.getTracks().forEach((t) => t.stop());
  if (!closed && L.ws.readyState === WebSocket.OPEN) L.ws.send(JSON.stringify({ type: "end" }));
  S.lastLive = L;  // keep the frames inspectable
  const btn = $("#live");
  btn.textContent = "🎤 Start live"; btn.classList.remove("on");
}

init();
