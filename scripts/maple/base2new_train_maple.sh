#!/bin/bash
# bash scripts/maple/base2new_train_maple.sh DATASET SEED
# Base-to-novel, step 1: train MaPLe on the base classes (16 shots), then test on them.
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
set -e
DATA=${DATA:?set DATA to the folder holding the datasets}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

TRAINER=MaPLe
CFG=vit_b16_c2_ep5_batch4_2ctx
SHOTS=16

DATASET=${1:?usage: $0 DATASET SEED}
SEED=${2:?usage: $0 DATASET SEED}

DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
if [ -d "${DIR}" ]; then
    echo "Results are available in ${DIR}. Resuming..."
else
    echo "Run this job and save the output to ${DIR}"
fi

$PYTHON train.py \
    --root "${DATA}" \
    --seed "${SEED}" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES base
