// Independent checks of a .glb written by unitalker: the Khronos glTF validator's report,
// then three.js's GLTFLoader + AnimationMixer sampling the morph-target animation.
// Usage: node check_glb.mjs FILE.glb t1 t2 ...   -> one JSON object on stdout.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import * as THREE from 'three';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';

const require = createRequire(import.meta.url);
const validator = require('gltf-validator');
const [file, ...times] = process.argv.slice(2);
const bytes = fs.readFileSync(file);
const report = await validator.validateBytes(new Uint8Array(bytes), { maxIssues: 100 });
const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(ab, '', resolve, reject));
let mesh = null;
gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetInfluences) mesh = o; });
const clip = gltf.animations[0];
const mixer = new THREE.AnimationMixer(gltf.scene);
mixer.clipAction(clip).play();
const samples = times.map((t) => { mixer.setTime(Number(t)); return Array.from(mesh.morphTargetInfluences); });
console.log(JSON.stringify({
  validator: { version: report.validatorVersion, errors: report.issues.numErrors,
               warnings: report.issues.numWarnings, messages: report.issues.messages },
  three: { revision: THREE.REVISION, duration: clip.duration, targets: mesh.morphTargetInfluences.length,
           names: Object.keys(mesh.morphTargetDictionary || {}), vertices: mesh.geometry.attributes.position.count,
           samples },
}));
