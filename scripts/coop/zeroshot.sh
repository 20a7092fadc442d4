#!/bin/bash
# Zero-shot CLIP with the dataset's hand-written template: bash scripts/coop/zeroshot.sh DATASET CFG
#   e.g. bash scripts/coop/zeroshot.sh caltech101 rn50   (CFG picks the backbone: configs/trainers/CoOp/<CFG>.yaml)
# For prompt ensembling use TRAINER=ZeroshotCLIP2 bash scripts/coop/zeroshot.sh ...
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
require_data
enter_repo

TRAINER=${TRAINER:-ZeroshotCLIP}
DATASET=$1
CFG=$2

$PYTHON train.py \
    --root "${DATA}" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/CoOp/${CFG}.yaml \
    --output-dir output/${TRAINER}/${CFG}/${DATASET} \
    --eval-only
