#!/bin/bash
# Cross-dataset / domain generalisation, step 2: evaluate the ImageNet model of xd_train.sh on the
# full test split of another dataset (e.g. caltech101, ..., imagenetv2, imagenet_sketch,
# imagenet_a, imagenet_r).
#   bash scripts/cocoop/xd_test.sh DATASET SEED      (from the repo root or scripts/cocoop)
set -e
DATA=${DATA:?set DATA to your datasets folder}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
SHOTS=16
LOADEP=${LOADEP:-10}

DATASET=$1
SEED=$2

MODEL_DIR=output/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
if [ -d "$DIR" ]; then
    echo "Oops! The results exist at ${DIR} (so skip this job)"
else
    $PYTHON train.py \
        --root "${DATA}" \
        --seed ${SEED} \
        --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir ${DIR} \
        --model-dir ${MODEL_DIR} \
        --load-epoch ${LOADEP} \
        --eval-only
fi
