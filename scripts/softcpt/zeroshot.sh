#!/bin/bash
# Zero-shot CLIP on one task of a suite, with that task's template:
#   bash scripts/softcpt/zeroshot.sh DATASET CFG TID   e.g. bash scripts/softcpt/zeroshot.sh general10 rn50 3
# CFG: configs/trainers/ZeroShot/<CFG>.yaml. Output: output/ZeroshotCLIP/<CFG>/<DATASET>-<TID>.
# TID "all" evaluates every task in one run (per-task lines and their average).
source "$(dirname "$0")/common.sh"
require_data
enter_repo

DATASET=$1
CFG=$2
TID=$3
zeroshot_py() {  # zeroshot_py OUTPUT_DIR [KEY VALUE...]
    local dir=$1
    shift
    local tasks=task${TID}
    if [ "${TID}" = all ]; then tasks=all; fi
    $PYTHON train.py \
        --root "${DATA}" \
        --trainer ZeroshotCLIP \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/ZeroShot/${CFG}.yaml \
        --output-dir "${dir}" \
        --eval-only \
        DATASET.SUBSAMPLE_TASKS ${tasks} DATASET.NUM_SHOTS 1 "$@"
}

if [ -z "${ZEROSHOT_SUB}" ]; then
    zeroshot_py output/ZeroshotCLIP/${CFG}/${DATASET}-${TID}
else
    zeroshot_py output/base2new/ZeroshotCLIP/${CFG}/${ZEROSHOT_SUB}/${DATASET}-${TID} \
        DATASET.SUBSAMPLE_CLASSES ${ZEROSHOT_SUB}
fi
