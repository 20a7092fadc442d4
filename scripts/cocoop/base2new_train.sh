#!/bin/bash
# Base-to-new, step 1: train on the base classes (16 shots) and test on them (the "base" accuracy).
#   bash scripts/cocoop/base2new_train.sh DATASET SEED      (from the repo root or scripts/cocoop)
# TRAINER/CFG may be set in the environment, e.g. TRAINER=CoOp CFG=vit_b16_ctxv1 (CoOp; use
# vit_b16_ep50_ctxv1 on ImageNet); then set LOADEP for base2new_test.sh to that config's epochs.
set -e
DATA=${DATA:?set DATA to your datasets folder}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
SHOTS=16

DATASET=$1
SEED=$2

DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
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
        DATASET.NUM_SHOTS ${SHOTS} \
        DATASET.SUBSAMPLE_CLASSES base
fi
