#!/bin/bash
# Cross-dataset / domain generalisation, step 1: train on ImageNet (all classes, 16 shots).
#   bash scripts/cocoop/xd_train.sh SEED      (from the repo root or scripts/cocoop)
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
xd_train "${TRAINER:-CoCoOp}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" imagenet "$@"
