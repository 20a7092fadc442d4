#!/bin/bash
# bash scripts/maple/reproduce_maple_xd.sh DATASET SEED WEIGHTSPATH
# Cross-dataset / domain generalisation with the released ImageNet MaPLe weights at
# WEIGHTSPATH/seedSEED. The released files pickle Python objects: if you trust them, run with
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
CFG=vit_b16_c2_ep5_batch4_2ctx_cross_datasets
SHOTS=16
LOADEP=2

DATASET=${1:?usage: $0 DATASET SEED WEIGHTSPATH}
SEED=${2:?usage: $0 DATASET SEED WEIGHTSPATH}

MODEL_DIR=${WEIGHTSPATH}/seed${SEED}
DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
echo "Evaluating the released model on ${DATASET}; output in ${DIR}"

$PYTHON train.py \
    --root "${DATA}" \
    --seed "${SEED}" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir "${DIR}" \
    --model-dir "${MODEL_DIR}" \
    --load-epoch ${LOADEP} \
    --eval-only
