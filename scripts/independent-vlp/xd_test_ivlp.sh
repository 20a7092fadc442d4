#!/bin/bash
# bash scripts/independent-vlp/xd_test_ivlp.sh DATASET SEED
# Cross-dataset / domain generalisation, step 2: test the ImageNet Independent V-L prompting (IVLP) model on DATASET (all classes).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
set -e
DATA=${DATA:?set DATA to the folder holding the datasets}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

TRAINER=IVLP
CFG=vit_b16_c2_ep5_batch4_2+2ctx
SHOTS=16
# The reference loads epoch 2, which this 5-epoch config never saves (only model.pth.tar-5
# exists), so its script fails; the epoch that exists is loaded here.
LOADEP=5

DATASET=${1:?usage: $0 DATASET SEED}
SEED=${2:?usage: $0 DATASET SEED}

MODEL_DIR=output/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
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
    --model-dir "${MODEL_DIR}" \
    --load-epoch ${LOADEP} \
    --eval-only
