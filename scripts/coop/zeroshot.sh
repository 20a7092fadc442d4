#!/bin/bash
# Zero-shot CLIP with the dataset's hand-written template: bash scripts/coop/zeroshot.sh DATASET CFG
#   e.g. bash scripts/coop/zeroshot.sh caltech101 rn50   (CFG picks the backbone: configs/trainers/CoOp/<CFG>.yaml)
# For prompt ensembling use TRAINER=ZeroshotCLIP2 bash scripts/coop/zeroshot.sh ...
set -e
DATA=${DATA:?set DATA to your datasets folder}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

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
