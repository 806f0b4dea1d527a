// unitalker viewer: a small WebGL mesh renderer with an orbit camera (no dependencies).
//
//   const v = new MeshViewer(canvas);
//   v.setMesh(neutral /* Float32Array V*3 */, faces /* Uint32Array F*3 or null */,
//             colors /* Float32Array V*3 (sRGB 0..1) or null: one skin colour */);
//   v.setVertices(positions);  // each frame
//   v.draw();
//
// Meshes without faces are drawn as points. Normals are recomputed from the faces on
// every frame (cheap for face meshes: a few thousand vertices).
"use strict";

const VS = `
attribute vec3 aPos;
attribute vec3 aNormal;
attribute vec3 aColor;
uniform mat4 uMVP;
uniform mat4 uModel;
uniform float uPointSize;
varying vec3 vNormal;
varying vec3 vColor;
void main() {
  vNormal = mat3(uModel) * aNormal;
  vColor = aColor;
  gl_Position = uMVP * vec4(aPos, 1.0);
  gl_PointSize = uPointSize;
}`;

const FS = `
precision mediump float;
varying vec3 vNormal;
varying vec3 vColor;
uniform float uLit;
void main() {
  vec3 uColor = vColor;
  vec3 n = normalize(vNormal);
  if (!gl_FrontFacing) n = -n;
  vec3 l1 = normalize(vec3(0.4, 0.6, 1.0));
  vec3 l2 = normalize(vec3(-0.6, 0.2, 0.5));
  float d = 0.25 + 0.6 * max(dot(n, l1), 0.0) + 0.25 * max(dot(n, l2), 0.0);
  gl_FragColor = vec4(mix(uColor, uColor * d, uLit), 1.0);
}`;

// ---- 4x4 matrices, column-major as WebGL wants them ----------------------------------
const M4 = {
  perspective(fovy, aspect, near, far) {
    const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
    return new Float32Array([f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1,
      0, 0, 2 * far * near * nf, 0]);
  },
  lookAt(eye, at, up) {
    const z = norm(sub(eye, at)), x = norm(cross(up, z)), y = cross(z, x);
    return new Float32Array([x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0,
      -dot(x, eye), -dot(y, eye), -dot(z, eye), 1]);
  },
  mul(a, b) {
    const o = new Float32Array(16);
    for (let c = 0; c < 4; c++)
      for (let r = 0; r < 4; r++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
        o[c * 4 + r] = s;
      }
    return o;
  },
  identity() { return new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]); },
};
function sub(a, b) { return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]; }
function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
function norm(a) { const l = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0] / l, a[1] / l, a[2] / l]; }

function computeNormals(pos, faces, out) {
  out.fill(0);
  for (let f = 0; f < faces.length; f += 3) {
    const a = faces[f] * 3, b = faces[f + 1] * 3, c = faces[f + 2] * 3;
    const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
    const vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    for (const i of [a, b, c]) { out[i] += nx; out[i + 1] += ny; out[i + 2] += nz; }
  }
  return out;
}

class MeshViewer {
  constructor(canvas) {
    this.canvas = canvas;
    // preserveDrawingBuffer: screenshots / toDataURL see the last frame (used by tests).
    const opts = { antialias: true, preserveDrawingBuffer: true };
    const gl = canvas.getContext("webgl", opts) || canvas.getContext("experimental-webgl", opts);
    if (!gl) throw new Error("WebGL is not available in this browser");
    this.gl = gl;
    this.uint32 = !!gl.getExtension("OES_element_index_uint");
    this.prog = this._program(VS, FS);
    this.loc = {
      pos: gl.getAttribLocation(this.prog, "aPos"),
      normal: gl.getAttribLocation(this.prog, "aNormal"),
      mvp: gl.getUniformLocation(this.prog, "uMVP"),
      model: gl.getUniformLocation(this.prog, "uModel"),
      color: gl.getAttribLocation(this.prog, "aColor"),
      lit: gl.getUniformLocation(this.prog, "uLit"),
      pointSize: gl.getUniformLocation(this.prog, "uPointSize"),
    };
    this.posBuf = gl.createBuffer();
    this.nrmBuf = gl.createBuffer();
    this.colBuf = gl.createBuffer();
    this.idxBuf = gl.createBuffer();
    this.yaw = 0; this.pitch = 0; this.distance = 3; this.center = [0, 0, 0]; this.radius = 1;
    this.mesh = null;
    this._bindMouse();
  }

  _program(vs, fs) {
    const gl = this.gl;
    const sh = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src); gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    };
    const p = gl.createProgram();
    gl.attachShader(p, sh(gl.VERTEX_SHADER, vs));
    gl.attachShader(p, sh(gl.FRAGMENT_SHADER, fs));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
    return p;
  }

  _bindMouse() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY]; });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      this.yaw += (e.clientX - drag[0]) * 0.01;
      this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + (e.clientY - drag[1]) * 0.01));
      drag = [e.clientX, e.clientY];
      this.draw();
    });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.distance = Math.max(0.3, Math.min(20, this.distance * Math.exp(e.deltaY * 0.001)));
      this.draw();
    }, { passive: false });
    c.addEventListener("dblclick", () => { this.yaw = 0; this.pitch = 0; this.distance = 3; this.draw(); });
  }

  /** neutral: Float32Array [V*3]; faces: Uint32Array [F*3] or null (points). */
  setMesh(neutral, faces, colors) {
    const gl = this.gl;
    const v = neutral.length / 3;
    let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < neutral.length; i += 3)
      for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], neutral[i + k]); hi[k] = Math.max(hi[k], neutral[i + k]); }
    this.center = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2];
    this.radius = Math.max(1e-6, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);
    let idx = null;
    if (faces && faces.length) {
      if (v > 65535 && !this.uint32) faces = null;  // cannot index: fall back to points
      else idx = v > 65535 ? new Uint32Array(faces) : new Uint16Array(faces);
    }
    this.mesh = { v, faces: idx ? faces : null, idx, normals: new Float32Array(v * 3) };
    let col = colors;
    if (!col) {  // one skin colour
      col = new Float32Array(v * 3);
      for (let i = 0; i < col.length; i += 3) { col[i] = 0.86; col[i + 1] = 0.72; col[i + 2] = 0.62; }
    }
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
    gl.bufferData(gl.ARRAY_BUFFER, col, gl.STATIC_DRAW);
    if (idx) {
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.idxBuf);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, idx, gl.STATIC_DRAW);
    }
    this.setVertices(neutral);
  }

  setVertices(pos) {
    if (!this.mesh) return;
    const gl = this.gl, m = this.mesh;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, pos, gl.DYNAMIC_DRAW);
    if (m.faces) computeNormals(pos, m.faces, m.normals);
    else m.normals.fill(0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.nrmBuf);
    gl.bufferData(gl.ARRAY_BUFFER, m.normals, gl.DYNAMIC_DRAW);
  }

  clear() { this.mesh = null; this.draw(); }

  draw() {
    const gl = this.gl, c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    gl.viewport(0, 0, w, h);
    gl.clearColor(0.12, 0.13, 0.16, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    const m = this.mesh;
    if (!m) return;
    gl.enable(gl.DEPTH_TEST);
    gl.useProgram(this.prog);
    const r = this.radius * this.distance;
    const eye = [
      this.center[0] + r * Math.sin(this.yaw) * Math.cos(this.pitch),
      this.center[1] + r * Math.sin(this.pitch),
      this.center[2] + r * Math.cos(this.yaw) * Math.cos(this.pitch),
    ];
    const view = M4.lookAt(eye, this.center, [0, 1, 0]);
    const proj = M4.perspective(0.6, w / h, r * 0.05, r * 10);
    gl.uniformMatrix4fv(this.loc.mvp, false, M4.mul(proj, view));
    gl.uniformMatrix4fv(this.loc.model, false, M4.identity());
    gl.uniform1f(this.loc.lit, m.faces ? 1 : 0);
    gl.uniform1f(this.loc.pointSize, 3 * dpr);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.enableVertexAttribArray(this.loc.pos);
    gl.vertexAttribPointer(this.loc.pos, 3, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.nrmBuf);
    gl.enableVertexAttribArray(this.loc.normal);
    gl.vertexAttribPointer(this.loc.normal, 3, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
    gl.enableVertexAttribArray(this.loc.color);
    gl.vertexAttribPointer(this.loc.color, 3, gl.FLOAT, false, 0, 0);
    if (m.faces) {
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.idxBuf);
      gl.drawElements(gl.TRIANGLES, m.idx.length, m.idx instanceof Uint32Array ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT, 0);
    } else {
      gl.drawArrays(gl.POINTS, 0, m.v);
    }
  }
}

/** Evaluate a blendshape rig: neutral [V*3] + sum_c w[c] * basis[c] ([C, V*3]) into out. */
function evalRig(neutral, basis, weights, out) {
  out.set(neutral);
  const n = neutral.length;
  for (let c = 0; c < weights.length; c++) {
    const w = weights[c];
    if (w === 0) continue;
    const off = c * n;
    for (let i = 0; i < n; i++) out[i] += w * basis[off + i];
  }
  return out;
}

/** The render-only dressing of a synth head: rest + A @ S @ (v - neutral) + blink * blinkField.
 *  d: {rest, blink, indptr, indices, data, neutral, smooth} (typed arrays; A is CSR [D, V];
 *  smooth: null or {indptr, indices, data}, the CSR [V, V] smoothing of the displacements). */
function evalDisplay(d, v, blink, out) {
  const n = d.rest.length / 3, ip = d.indptr, ix = d.indices, a = d.data, nb = d.neutral;
  const nv = nb.length / 3;
  if (!d.delta) d.delta = new Float32Array(nb.length);
  const dv = d.delta, s = d.smooth;
  for (let r = 0; r < nv; r++) {
    const o = r * 3;
    if (!s) { dv[o] = v[o] - nb[o]; dv[o + 1] = v[o + 1] - nb[o + 1]; dv[o + 2] = v[o + 2] - nb[o + 2]; continue; }
    let x = 0, y = 0, z = 0;
    for (let k = s.indptr[r]; k < s.indptr[r + 1]; k++) {
      const j = s.indices[k] * 3, w = s.data[k];
      x += w * (v[j] - nb[j]); y += w * (v[j + 1] - nb[j + 1]); z += w * (v[j + 2] - nb[j + 2]);
    }
    dv[o] = x; dv[o + 1] = y; dv[o + 2] = z;
  }
  for (let r = 0; r < n; r++) {
    let x = 0, y = 0, z = 0;
    for (let k = ip[r]; k < ip[r + 1]; k++) {
      const j = ix[k] * 3, w = a[k];
      x += w * dv[j]; y += w * dv[j + 1]; z += w * dv[j + 2];
    }
    const o = r * 3;
    out[o] = d.rest[o] + x + blink * d.blink[o];
    out[o + 1] = d.rest[o + 1] + y + blink * d.blink[o + 1];
    out[o + 2] = d.rest[o + 2] + z + blink * d.blink[o + 2];
  }
  return out;
}

/** A procedural blink in [0, 1] at time t (s): every 2-6 s, 70 ms closing, 150 ms opening
 *  (the same shape as unitalker.synth.dressing.IdleMotion, not the same random times). */
function blinkAt(t) {
  let start = 0.9, seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  while (start + 2 < t) {
    const gap = 2 + 4 * rnd();
    if (start + gap > t) break;
    start += gap;
  }
  const dt = t - start;
  if (dt < 0) return 0;
  if (dt < 0.07) return Math.sin(0.5 * Math.PI * dt / 0.07);
  if (dt < 0.11) return 1;
  if (dt < 0.26) return 0.5 + 0.5 * Math.cos(Math.PI * (dt - 0.11) / 0.15);
  return 0;
}

window.MeshViewer = MeshViewer;
window.evalRig = evalRig;
window.evalDisplay = evalDisplay;
window.blinkAt = blinkAt;
