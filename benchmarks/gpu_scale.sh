#!/usr/bin/env bash
# The transfer A/B's `gpu` row (issue 18): today's default generator and augmentation at GPU
# scale. Generates SPEC (default syn_2k_50_im: 2,000 identities x 50 images, identity mixup),
# trains the paper preset's LResNet50E-IR at 112x96 for EPOCHS epochs with the cpu preset's
# augmentation (its default random erasing included), fitted to BUDGET_MIN minutes, and scores
# LFW (10 folds, 6,000 pairs). Stages: generate | train | evaluate | all (default).
# Needs SYNFACE_DATA (facemodels/, lfw/; celeba-299/ too unless cache/ holds the basis).
# EXTRA_SET: more --set options (a smoke test: EXTRA_SET='--set backbone=mobilefacenet').
# Results: $RESULTS/{generate.log,generate.json,train.log,metrics.json,evaluate.log,lfw.json}.
set -euo pipefail
SPEC=${SPEC:-syn_2k_50_im}
EPOCHS=${EPOCHS:-6}
BUDGET_MIN=${BUDGET_MIN:-5}
WORKERS=${WORKERS:-$(nproc)}
DATA=${DATA:-data/gpu-$SPEC}
RUN=${RUN:-runs/gpu-$SPEC}
RESULTS=${RESULTS:-$RUN}
SYNFACE=${SYNFACE:-synface}
mkdir -p "$RESULTS"

generate() {
  local t0=$SECONDS
  $SYNFACE generate "$SPEC" --out "$DATA" --workers "$WORKERS" 2>&1 | tr '\r' '\n' | grep -v "img/s\]$" \
    > "$RESULTS/generate.log"
  echo "{\"spec\": \"$SPEC\", \"generate_s\": $((SECONDS - t0))}" > "$RESULTS/generate.json"
}

train() {
  # lr / 10 at 60, 80 and 90 % of the run, as the paper's 24 / 30 / 36 of 40 epochs roughly are.
  local milestones
  milestones=$(python3 -c "print(', '.join(str(round($EPOCHS * f, 2)) for f in (0.6, 0.8, 0.9)))")
  # The cpu preset's augmentation (blur kernels doubled: they are in pixels of the input).
  $SYNFACE train paper --data "$DATA" --out "$RUN" --overwrite \
    --set optim.epochs="$EPOCHS" --set "optim.milestones=[$milestones]" --set optim.warmup_epochs=0.5 \
    --set augment.color_jitter=0.3 --set augment.jitter_strength=0.3 --set augment.motion_blur=0.2 \
    --set "augment.blur_kernel=[3, 9]" --set augment.grayscale=0.1 --set augment.erasing=0.3 \
    --set workers=$((WORKERS > 12 ? 12 : WORKERS)) --set validation.every_epochs="$EPOCHS" \
    --set validation.identities=100 --set validation.samples=4 \
    --set time_budget_min="$BUDGET_MIN" --set fit_to_budget=true ${EXTRA_SET:-} \
    2>&1 | tr '\r' '\n' | grep -v "step/s" > "$RESULTS/train.log"
  [ "$RUN" -ef "$RESULTS" ] || cp "$RUN/metrics.json" "$RESULTS/metrics.json"
}

evaluate() {
  $SYNFACE evaluate --checkpoint "$RUN/checkpoint.pt" --benchmark lfw --json "$RESULTS/lfw.json" 2>&1 \
    | tr '\r' '\n' | grep -v "batch/s" > "$RESULTS/evaluate.log"
}

case "${1:-all}" in
  generate) generate ;;
  train) train ;;
  evaluate) evaluate ;;
  all) generate; train; evaluate ;;
  *) echo "usage: $0 [generate|train|evaluate|all]" >&2; exit 2 ;;
esac
