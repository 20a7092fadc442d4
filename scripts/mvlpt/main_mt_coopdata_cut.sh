#!/bin/bash
# MVLPT multitask source training on the 11 CoOp datasets (one seed):
#   bash scripts/mvlpt/main_mt_coopdata_cut.sh TRAINER CFG NCTX SHOTS SEED
#   e.g. bash scripts/mvlpt/main_mt_coopdata_cut.sh UPT vit_b16 4 5 1
# TRAINER: prompt family CoOp (MCoOp), VPT (MVPT), UPT (MUPT) or COCOOP; CFG:
# configs/trainers/MVLPT/<CFG>.yaml. Output: $OUTPUT (default output)/<datasets>/<TRAINER>/
# <CFG>_<SHOTS>shots/nctx<NCTX>_csc_ctp/seed<SEED>. Average the seeds for target runs with
#   python scripts/mvlpt/avg_ckpt.py <that folder without seed*> <folder>/seed1 <folder>/seed2 <folder>/seed3
source "$(dirname "$0")/../lib/run.sh"
mvlpt_begin "TRAINER CFG NCTX SHOTS SEED" 5 "$@"
SEED=$5
DATASET=${MVLPT_COOP_SOURCES}
DIR=${OUTPUT}/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc_ctp/seed${SEED}
if ! skip_existing "${DIR}"; then
    mvlpt_py "${SEED}" "${DIR}" --dataset "${DATASET}" --dataset-coop --multi-task
fi
