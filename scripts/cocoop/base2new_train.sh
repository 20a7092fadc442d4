#!/bin/bash
# Base-to-new, step 1: train on the base classes (16 shots) and test on them (the "base" accuracy).
#   bash scripts/cocoop/base2new_train.sh DATASET SEED      (from the repo root or scripts/cocoop)
# TRAINER/CFG may be set in the environment, e.g. TRAINER=CoOp CFG=vit_b16_ctxv1 (CoOp; use
# vit_b16_ep50_ctxv1 on ImageNet); then set LOADEP for base2new_test.sh to that config's epochs.
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
base2new_train "${TRAINER:-CoCoOp}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" "$@"
