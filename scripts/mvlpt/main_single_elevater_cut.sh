#!/bin/bash
# MVLPT single-task adaptation on one ELEVATER target, from the seed-averaged source prompt:
#   bash scripts/mvlpt/main_single_elevater_cut.sh TRAINER CFG NCTX SHOTS SEED DATASET
#   e.g. bash scripts/mvlpt/main_single_elevater_cut.sh UPT vit_b16 4 5 1 cifar-10
# The source prompt is MODEL_DIR (default: the avg_ckpt.py folder of main_mt_coopdata_cut.sh with
# the same TRAINER, CFG, NCTX and SHOTS; MODEL_DIR=none trains from scratch). Unlike the reference,
# CoOp (MCoOp) loads it too; COCOOP trains from scratch (a baseline), as there.
# Output: $OUTPUT (default output)/CoCoOp_single_task_20/<DATASET>/<TRAINER>/<CFG>_<SHOTS>shots/
# nctx<NCTX>_csc_ctp/seed<SEED>.
source "$(dirname "$0")/../lib/run.sh"
mvlpt_begin "TRAINER CFG NCTX SHOTS SEED DATASET" 6 "$@"
SEED=$5
DATASET=$6
mvlpt_model_dir "${OUTPUT}/${MVLPT_COOP_SOURCES}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc_ctp"
if [ "$TRAINER" = COCOOP ]; then
    MODEL_ARGS=()
fi
DIR=${OUTPUT}/CoCoOp_single_task_20/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc_ctp/seed${SEED}
if ! skip_existing "${DIR}"; then
    mvlpt_py "${SEED}" "${DIR}" --dataset "${DATASET}" "${MODEL_ARGS[@]}"
fi
