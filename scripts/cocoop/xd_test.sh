#!/bin/bash
# Cross-dataset / domain generalisation, step 2: evaluate the ImageNet model of xd_train.sh on the
# full test split of another dataset (e.g. caltech101, ..., imagenetv2, imagenet_sketch,
# imagenet_a, imagenet_r).
#   bash scripts/cocoop/xd_test.sh DATASET SEED      (from the repo root or scripts/cocoop)
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
xd_test "${TRAINER:-CoCoOp}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" "${LOADEP:-10}" "$@"
