#!/bin/bash
# bash scripts/maple/reproduce_maple.sh DATASET SEED WEIGHTSPATH
# Base-to-novel with released MaPLe weights: WEIGHTSPATH/base/seedSEED, tested on the base, then
# the novel classes. The released files pickle Python objects: if you trust them, run with
# DASSL_TRUST_LEGACY_CHECKPOINTS=1 (their frozen-CLIP entries are skipped when loading).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
set -e
DATA=${DATA:?set DATA to the folder holding the datasets}
DATA=$(realpath "$DATA")
WEIGHTSPATH=$(realpath "${3:?usage: $0 DATASET SEED WEIGHTSPATH}")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

TRAINER=MaPLe
CFG=vit_b16_c2_ep5_batch4_2ctx
SHOTS=16
LOADEP=5

DATASET=${1:?usage: $0 DATASET SEED WEIGHTSPATH}
SEED=${2:?usage: $0 DATASET SEED WEIGHTSPATH}

MODEL_DIR=${WEIGHTSPATH}/base/seed${SEED}
for SUB in base new; do
    DIR=output/base2new/test_${SUB}/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
    echo "Evaluating the released model on the ${SUB} classes; output in ${DIR}"

    $PYTHON train.py \
        --root "${DATA}" \
        --seed "${SEED}" \
        --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir "${DIR}" \
        --model-dir "${MODEL_DIR}" \
        --load-epoch ${LOADEP} \
        --eval-only \
        DATASET.NUM_SHOTS ${SHOTS} \
        DATASET.SUBSAMPLE_CLASSES ${SUB}
done
