#!/usr/bin/env bash
# The whole COMEDIAN pipeline on a generated mini-SoccerNet, training through torchrun with 2 processes, on CPU or GPU:
# data -> frame store -> bank reduction -> stage 1 (SSL) -> stage 2 (distillation) -> stage 3a -> stage 3b ->
# inference and scoring on the test split, next to an untrained model and to stage 3 trained without stages 1-2; and
# both again with stage 3 on 1 of the 10 labelled training games (the label-scarce setting of docs/TOY_STUDY.md).
# Re-running skips what is finished: data steps check their outputs, training scripts resume from their last
# checkpoint and stop at once when complete.
#   usage: bash scripts/quickstart.sh [WORKDIR]      (default: ./quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-quickstart}
DATA=$WORK/mini_soccernet
RUNS=$WORK/runs
NPROC=${NPROC:-2}
GAMES=${GAMES:-20}
SECONDS_PER_HALF=${SECONDS_PER_HALF:-60}
PLAYERS=${PLAYERS:-0}  # running players and a ball on the pitch (data/synthetic_players.py; docs/TOY_STUDY.md)
UNLABELLED=${UNLABELLED:-0}  # more games without labels, which stages 1 and 2 see and stage 3 does not
EVENTS=${EVENTS:-glyphs}  # how events show: glyphs (still), or motion (a disc moving in its class's direction)
SPLITS=(train.txt valid.txt test.txt)
PRETRAIN=train.txt  # what stages 1 and 2 read
if ((UNLABELLED > 0)); then SPLITS+=(unlabelled.txt); PRETRAIN=pretrain.txt; fi
PY=${PYTHON:-python}  # the interpreter to use (tests pass their own, so that no environment needs activating)
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC")
COMMON=(data.root="$DATA" data.source=store data.store="$DATA/store")
mkdir -p "$WORK"

step() { printf '\n== %s (at %d min %02d s) ==\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)); }

step "1/9 generate the mini-SoccerNet ($GAMES games, two ${SECONDS_PER_HALF}s halves each$( ((UNLABELLED)) &&
  echo "; $UNLABELLED more without labels"))"
if [[ -f $DATA/test.txt ]]; then echo "already there: $DATA"; else
  "$PY" -m data.synthetic --out "$DATA" --games "$GAMES" --seconds "$SECONDS_PER_HALF" --seed 0 \
    --events-per-minute 12 --workers "$NPROC" --players "$PLAYERS" --unlabelled "$UNLABELLED" --events "$EVENTS"; fi

step "2/9 frame store (2 fps, 64x64: the tiny models' input size, so loaders decode 12x fewer pixels)"
"$PY" -m data.prepare --root "$DATA" --out "$DATA/store" --split "${SPLITS[@]/#/$DATA/}" --workers "$NPROC" \
  --size 64x64

step "3/9 feature bank: standardise + PCA to 64 dimensions, fitted on train"
if [[ -f $DATA/bank_pca64_pca.npz ]]; then echo "already reduced"; else
  "$PY" -m data.features --root "$DATA" --fit-split train.txt --apply-split "${SPLITS[@]}" \
    --out-name bank_pca64.npy --dim 64; fi

step "4/9 stage 1: SCE self-supervised pretraining of the spatial ViT"
"${TORCHRUN[@]}" train_ssl.py --config configs/ssl/tiny_mini.yaml "${COMMON[@]}" run.output_dir="$RUNS/ssl" \
  data.train_split="$PRETRAIN"

step "5/9 stage 2: distillation of the ViViT from the feature bank"
"${TORCHRUN[@]}" train_distill.py --config configs/distill/tiny_mini.yaml "${COMMON[@]}" \
  run.output_dir="$RUNS/distill" model.init_checkpoint="$RUNS/ssl/checkpoint_last.pth" data.train_split="$PRETRAIN"

step "6/9 stage 3a (head on the frozen trunk) and 3b (everything)"
"${TORCHRUN[@]}" train_spotting.py --config configs/spotting/tiny_mini_phase_a.yaml "${COMMON[@]}" \
  run.output_dir="$RUNS/spot_a" model.init_checkpoint="$RUNS/distill/checkpoint_last.pth"
"${TORCHRUN[@]}" train_spotting.py --config configs/spotting/tiny_mini_phase_b.yaml "${COMMON[@]}" \
  run.output_dir="$RUNS/spot_b" model.init_checkpoint="$RUNS/spot_a/checkpoint_last.pth"

step "7/9 the ablation: stage 3 alone, from random weights, with the same stage-3 budget"
"${TORCHRUN[@]}" train_spotting.py --config configs/spotting/tiny_mini_scratch.yaml "${COMMON[@]}" \
  run.output_dir="$RUNS/spot_scratch"

step "8/9 label-scarce: COMEDIAN's stage 3 and the ablation on 1 of the 10 training games (docs/TOY_STUDY.md)"
# the toy study's 1-game column at a sixth of its budget, one seed: 1,200 training windows (200 epochs of the game's 6
# windows, batch 6), phase a a tenth of them, a validation every 120; the ablation's warmup the same share of its
# epochs as in tiny_mini_scratch.yaml (20 of 190)
head -n 1 "$DATA/train.txt" > "$DATA/train_first1.txt"
FEW=(data.train_split="$DATA/train_first1.txt" run.global_batch_size=6 eval.every_epochs=20 run.save_every_epochs=20)
"${TORCHRUN[@]}" train_spotting.py --config configs/spotting/tiny_mini_phase_a.yaml "${COMMON[@]}" "${FEW[@]}" \
  run.epochs=20 run.output_dir="$RUNS/few_a" model.init_checkpoint="$RUNS/distill/checkpoint_last.pth"
"${TORCHRUN[@]}" train_spotting.py --config configs/spotting/tiny_mini_phase_b.yaml "${COMMON[@]}" "${FEW[@]}" \
  run.epochs=180 run.output_dir="$RUNS/few_b" model.init_checkpoint="$RUNS/few_a/checkpoint_last.pth"
"${TORCHRUN[@]}" train_spotting.py --config configs/spotting/tiny_mini_scratch.yaml "${COMMON[@]}" "${FEW[@]}" \
  run.epochs=200 optim.warmup_epochs=21 run.output_dir="$RUNS/few_scratch"

step "9/9 inference and scoring on the test split"
score_once() {  # OUT CHECKPOINT ARGS...: evaluate.py test, skipped when OUT/scores.json is newer than CHECKPOINT
  local out=$1 checkpoint=$2; shift 2
  if [[ -f $out/scores.json && ( -z $checkpoint || $out/scores.json -nt $checkpoint ) ]]; then
    echo "already scored: $out/scores.json"; return; fi
  # one process: the 5 test games take less time to score than torchrun's 2 workers take to start (same scores)
  "$PY" evaluate.py test "$@" --split test.txt "${COMMON[@]}" --out "$out"
}
score_once "$RUNS/test_comedian" "$RUNS/spot_b/checkpoint_best.pth" --checkpoint "$RUNS/spot_b/checkpoint_best.pth"
score_once "$RUNS/test_scratch" "$RUNS/spot_scratch/checkpoint_best.pth" \
  --checkpoint "$RUNS/spot_scratch/checkpoint_best.pth"
score_once "$RUNS/test_few_comedian" "$RUNS/few_b/checkpoint_best.pth" --checkpoint "$RUNS/few_b/checkpoint_best.pth"
score_once "$RUNS/test_few_scratch" "$RUNS/few_scratch/checkpoint_best.pth" \
  --checkpoint "$RUNS/few_scratch/checkpoint_best.pth"
score_once "$RUNS/test_untrained" "" --random-init --config configs/spotting/tiny_mini_phase_b.yaml

printf '\nValidation tight average-mAP per stage-3 epoch (the paper'"'"'s faster convergence):\n'
"$PY" evaluate.py convergence --out "$WORK/convergence.svg" \
  --run "COMEDIAN (stages 1, 2, 3a, 3b)=$RUNS/spot_a,$RUNS/spot_b" --run "no pretraining=$RUNS/spot_scratch"
"$PY" evaluate.py convergence --out "$WORK/convergence_1game.svg" \
  --run "COMEDIAN, 1 labelled game=$RUNS/few_a,$RUNS/few_b" --run "no pretraining, 1 labelled game=$RUNS/few_scratch"

printf '\nTest split of the mini-SoccerNet, average-mAP in %%:\n\n'
"$PY" evaluate.py table --per-class \
  --run "COMEDIAN (stages 1, 2, 3)=$RUNS/test_comedian/scores.json" \
  --run "stage 3 only (no pretraining)=$RUNS/test_scratch/scores.json" \
  --run "COMEDIAN, stage 3 on 1 game=$RUNS/test_few_comedian/scores.json" \
  --run "no pretraining, stage 3 on 1 game=$RUNS/test_few_scratch/scores.json" \
  --run "untrained=$RUNS/test_untrained/scores.json"
