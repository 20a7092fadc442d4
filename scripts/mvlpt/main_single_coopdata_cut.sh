#!/bin/bash
# MVLPT single-task run on one CoOp dataset (registered name, e.g. Caltech101):
#   bash scripts/mvlpt/main_single_coopdata_cut.sh TRAINER CFG NCTX SHOTS SEED DATASET
# MODEL_DIR=<source prompt folder> initialises from a source prompt (default: none).
# Output: $OUTPUT (default output)/CoCoOp_single_task_coop/<DATASET>/<TRAINER>/<CFG>_<SHOTS>shots/
# nctx<NCTX>_csc_ctp/seed<SEED>.
source "$(dirname "$0")/../lib/run.sh"
mvlpt_begin "TRAINER CFG NCTX SHOTS SEED DATASET" 6 "$@"
SEED=$5
DATASET=$6
mvlpt_model_dir none
DIR=${OUTPUT}/CoCoOp_single_task_coop/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc_ctp/seed${SEED}
if ! skip_existing "${DIR}"; then
    mvlpt_py "${SEED}" "${DIR}" --dataset "${DATASET}" --dataset-coop "${MODEL_ARGS[@]}"
fi
