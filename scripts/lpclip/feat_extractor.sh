#!/bin/bash
# Linear probe, step 1: CLIP features of every split of the 11 datasets (bash scripts/lpclip/feat_extractor.sh).
# BACKBONE (optional): a CLIP name or checkpoint path instead of rn50_val.yaml's RN50.
set -e
DATA=${DATA:?set DATA to your datasets folder}
DATA=$(realpath "$DATA")
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

OUTPUT=${OUTPUT:-output/lpclip/clip_feat}
SEED=1
BACKBONE_ARGS=()
if [ -n "${BACKBONE}" ]; then BACKBONE_ARGS=(--backbone "${BACKBONE}"); fi

for DATASET in oxford_pets oxford_flowers fgvc_aircraft dtd eurosat stanford_cars food101 sun397 caltech101 ucf101 imagenet
do
    for SPLIT in train val test
    do
        $PYTHON scripts/lpclip/feat_extractor.py \
            --split ${SPLIT} \
            --root "${DATA}" \
            --seed ${SEED} \
            --dataset-config-file configs/datasets/${DATASET}.yaml \
            --config-file configs/trainers/CoOp/rn50_val.yaml \
            --output-dir ${OUTPUT} \
            "${BACKBONE_ARGS[@]}"
    done
done
