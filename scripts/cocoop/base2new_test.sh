#!/bin/bash
# Base-to-new, step 2: evaluate the model of base2new_train.sh on the new classes.
#   bash scripts/cocoop/base2new_test.sh DATASET SEED      (from the repo root or scripts/cocoop)
# LOADEP is the epoch of the saved model (the config's MAX_EPOCH: 10 for CoCoOp, 200 for CoOp's
# vit_b16_ctxv1); TRAINER/CFG/LOADEP may be set in the environment.
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
base2new_test "${TRAINER:-CoCoOp}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" "${LOADEP:-10}" "$@"
