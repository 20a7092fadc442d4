#!/bin/bash
# Linear probe per task of a suite (the reference protocol, 3 runs, K = 1, 2, 4, 8, 16):
#   bash scripts/softcpt/linearprob.sh DATASET MODEL [MAX_TASK_IDX]   e.g. general10 rn50 9
# MODEL: rn50, rn101, vit_b16 or vit_b32. Features of every task and split (full data, test
# transform) go to output/lpclip/<MODEL>/<DATASET.NAME>/<task id>/<split>.npz; per-task reports to
# output/lpclip/<MODEL>/report, per-seed logs and lp_average.json (per-task and mean over tasks) to
# output/lpclip/<MODEL>/<DATASET.NAME>/. MAX_TASK_IDX (9 / 5 / 19) is checked against the suite.
source "$(dirname "$0")/common.sh"
require_data
enter_repo

DATASET=$1
MODEL=$2
MAX_TASK_IDX=$3
case ${MODEL} in
    rn50) BACKBONE=RN50 ;;
    rn101) BACKBONE=RN101 ;;
    vit_b16) BACKBONE=ViT-B/16 ;;
    vit_b32) BACKBONE=ViT-B/32 ;;
    *) echo "$0: MODEL must be rn50, rn101, vit_b16 or vit_b32, got '${MODEL}'" >&2; exit 1 ;;
esac
NAME=$(sed -n 's/^ *NAME: *"\(.*\)"/\1/p' configs/datasets/${DATASET}.yaml)
OUT=output/lpclip/${MODEL}

for SPLIT in train val test
do
    $PYTHON scripts/lpclip/feat_extractor.py \
        --split ${SPLIT} \
        --root "${DATA}" \
        --seed 1 \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/CoOp/rn50_val.yaml \
        --output-dir ${OUT} \
        --backbone ${BACKBONE}
done
if [ -n "${MAX_TASK_IDX}" ] && [ ! -d "${OUT}/${NAME}/${MAX_TASK_IDX}" ]; then
    echo "$0: ${NAME} has no task ${MAX_TASK_IDX}" >&2
    exit 1
fi
$PYTHON scripts/lpclip/linear_probe.py \
    --dataset ${NAME} \
    --feature_dir ${OUT} \
    --num_step 8 \
    --num_run 3 \
    --report_dir ${OUT}/report \
    --log_dir ${OUT}
echo "done"
