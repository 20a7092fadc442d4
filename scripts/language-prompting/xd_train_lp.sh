#!/bin/bash
# bash scripts/language-prompting/xd_train_lp.sh DATASET SEED   (DATASET = imagenet)
# Cross-dataset / domain generalisation, step 1: train deep language prompting (IVLP, text only) on all classes (16 shots).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
set -e
DATA=${DATA:?set DATA to the folder holding the datasets}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

TRAINER=IVLP
CFG=vit_b16_c2_ep5_batch4_4ctx_language_only
SHOTS=16

DATASET=${1:?usage: $0 DATASET SEED}
SEED=${2:?usage: $0 DATASET SEED}

DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
if [ -d "${DIR}" ]; then
    echo "Oops! The results exist at ${DIR} (so skip this job)"
    exit 0
fi

$PYTHON train.py \
    --root "${DATA}" \
    --seed "${SEED}" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS ${SHOTS}
