#!/usr/bin/env bash
# Every GPU figure of docs/PERFORMANCE.md in one run of at most 10 minutes on one H200 machine (16 cores):
#   1. the stage-3 model step, eager and compiled, ViViT-T and ViSwin-T, with the GPU augmentation's cost (bench_model),
#      and the augmentation against its previous version (bench_augment);
#   2. spotting a 45-minute half end to end, one read against 8 decoding processes, identical scores (bench_inference);
#      a Ball Action Spotting model's spot against a SoccerNet-v2 one's, per video minute (bench_spot_rates);
#   3. stages 1, 2 and 3 end to end at the paper's batch and shapes on generated data, compiled, 14 loader workers:
#      samples/s, data wait, and the wall-clock estimate of the paper's epochs (summarised by stage_speed.py);
#   4. the loader per core, this host's CPU (bench_data): store windows as YUV planes, JPEG clips sent encoded;
#   5. the paper's schedule in hours on 1, 2 and 8 GPUs from the figures above (paper_schedule.py).
# Stage 1 reads JPEG folders: on the GPU its clips are decoded there in batches (data.jpeg_on_device, nvJPEG).
# Logs and the BENCH lines go to $OUT (default gpu_figures/).
#   usage: bash benchmarks/gpu_figures.sh                 (on the GPU machine)
#          DRY=1 bash benchmarks/gpu_figures.sh           (on a CPU: the same commands at toy sizes, to check them)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_figures}
PY=${PYTHON:-python}
mkdir -p "$OUT"
if [[ ${DRY:-0} == 1 ]]; then  # toy sizes: every command runs, no figure means anything
  GAMES=5; SECONDS_PER_HALF=70; WORKERS=2; STEPS=1; HALF_MINUTES=3
  MODEL=(--device cpu --models vivit_micro --steps 1 --compile off --augment)
  INFER=(--device cpu --model vivit_micro --decode-workers 2); SPOT_RATES=(--device cpu --model vivit_micro)
  BATCH=(run.global_batch_size=4); WINDOW_BATCH=(run.global_batch_size=2)
  DEVICE=(run.device=cpu run.compile=false run.precision=fp32)  # the paper configs train in fp16, CUDA only
  DATA=(--minutes 2 --windows 1 --clips 10); BANK=(--dim 64); DISTILL=(loss.dim=64)  # too few bank rows for 512
  AUGMENT=(--device cpu --batch 1 --repeats 1)
else
  GAMES=12; SECONDS_PER_HALF=600; WORKERS=14; STEPS=10; HALF_MINUTES=45
  MODEL=(--models vivit_tiny --compile both --augment); INFER=(--decode-workers 8); SPOT_RATES=()
  BATCH=(); WINDOW_BATCH=(); DEVICE=(run.compile=true)
  DATA=(--minutes 2 --windows 8 --clips 300); BANK=(--dim 512); DISTILL=()
  AUGMENT=(--device cuda --batch 32)
fi
log() { printf '\n== %s (%s) ==\n' "$1" "$(date +%T)" | tee -a "$OUT/summary.txt"; }

log "environment"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"; nproc
  "$PY" -c "import torch, torchvision, av; print(torch.__version__, torchvision.__version__, av.__version__)"; } \
  | tee -a "$OUT/summary.txt"

log "1. stage-3 model step: eager and compiled, augmentation cost"
"$PY" benchmarks/bench_model.py "${MODEL[@]}" 2>&1 | tee "$OUT/model.txt" | grep -v "^BENCH" || true
grep "^BENCH" "$OUT/model.txt" >> "$OUT/summary.txt"

log "1b. photometric augmentation per window and clip, against the version before it worked in place"
"$PY" benchmarks/bench_augment.py "${AUGMENT[@]}" 2>&1 | tee "$OUT/augment.txt" | grep -v "^BENCH" || true
grep "^BENCH" "$OUT/augment.txt" >> "$OUT/summary.txt"

log "2. spot one ${HALF_MINUTES}-minute half end to end"
"$PY" benchmarks/bench_inference.py --minutes "$HALF_MINUTES" --workdir "$OUT/inference" "${INFER[@]}" 2>&1 \
  | tee "$OUT/inference.txt" | grep -v "^BENCH" || true
grep "^BENCH" "$OUT/inference.txt" >> "$OUT/summary.txt"
log "2b. spot with a Ball Action Spotting model (12.5 fps, frame head) against a SoccerNet-v2 one, per video minute"
"$PY" benchmarks/bench_spot_rates.py --minutes "$HALF_MINUTES" --workdir "$OUT/inference" "${SPOT_RATES[@]}" 2>&1 \
  | tee "$OUT/spot_rates.txt" | grep -v "^BENCH" || true
grep "^BENCH" "$OUT/spot_rates.txt" >> "$OUT/summary.txt"

log "3. stages 1-3 at the paper's batch on generated data ($GAMES games, ${SECONDS_PER_HALF} s halves)"
D=$OUT/mini_soccernet
[[ -f $D/train.txt ]] || "$PY" -m data.synthetic --out "$D" --games "$GAMES" --seconds "$SECONDS_PER_HALF" \
  --workers "$WORKERS" > "$OUT/data.txt" 2>&1
head -1 "$D/valid.txt" > "$D/one_valid.txt"  # stage 3 validates once, at the end: one game keeps that short
"$PY" -m data.prepare --root "$D" --out "$D/store" --games "$D/train.txt" --workers "$WORKERS" >> "$OUT/data.txt" 2>&1
"$PY" -m data.prepare --root "$D" --out "$D/store" --games "$D/one_valid.txt" --workers 2 >> "$OUT/data.txt" 2>&1
"$PY" -m data.prepare --root "$D" --out "$D/frames" --format jpeg --games "$D/train.txt" --workers "$WORKERS" \
  >> "$OUT/data.txt" 2>&1
"$PY" -m data.features --root "$D" --fit-split train.txt --apply-split train.txt \
  --out-name baidu_pca512.npy "${BANK[@]}" >> "$OUT/data.txt" 2>&1
# 3 epochs of at most $STEPS steps: epoch boundaries (the loader's hand-over) are in the figures
COMMON=(data.root="$D" data.train_split=train.txt run.epochs=3 run.max_steps_per_epoch="$STEPS" run.resume=false
        run.num_workers="$WORKERS" run.log_every_steps=5 run.save_every_epochs=1 optim.warmup_epochs=1 "${DEVICE[@]}")
"$PY" train_ssl.py --config configs/ssl/vit_tiny_soccernet.yaml "${COMMON[@]}" data.frames_root="$D/frames" \
  run.output_dir="$OUT/runs/ssl" "${BATCH[@]}" > "$OUT/ssl.txt" 2>&1
"$PY" train_distill.py --config configs/distill/vivit_tiny_soccernet.yaml "${COMMON[@]}" data.store="$D/store" \
  run.output_dir="$OUT/runs/distill" model.init_checkpoint= "${WINDOW_BATCH[@]}" "${DISTILL[@]}" \
  > "$OUT/distill.txt" 2>&1
"$PY" train_spotting.py --config configs/spotting/vivit_tiny_phase_b.yaml "${COMMON[@]}" data.store="$D/store" \
  data.valid_split=one_valid.txt eval.every_epochs=0 run.output_dir="$OUT/runs/spot" model.init_checkpoint= \
  "${WINDOW_BATCH[@]}" > "$OUT/spot.txt" 2>&1
"$PY" benchmarks/stage_speed.py "$OUT/runs/ssl" "$OUT/runs/distill" "$OUT/runs/spot" | tee -a "$OUT/summary.txt"

log "4. loader windows/s and clips/s per core, this host"
"$PY" benchmarks/bench_data.py "${DATA[@]}" 2>&1 | tee "$OUT/data_bench.txt" | grep -v "^BENCH" || true
grep "^BENCH" "$OUT/data_bench.txt" >> "$OUT/summary.txt"

log "5. the paper's schedule from these figures (stage 1's model step estimated from its FLOPs)"
"$PY" benchmarks/paper_schedule.py "$OUT/summary.txt" 2>&1 | tee "$OUT/schedule.txt" | grep -v "^BENCH" || true
log "done"
