#!/bin/bash
# SoftCPT (MTCoOp) with class sampling (General-10's C* variants), seeds 1-3:
#   bash scripts/softcpt/main_mtcoop_cls_sample.sh DATASET CFG SHOTS CLASS_N_CTX CLASS_CSC TASK_N_CTX TASK_CSC N_CTX CSC PG_TYPE PG_RATIO CLS_SAMPLE_RATE
#   CATA: bash scripts/softcpt/main_mtcoop_cls_sample.sh general10 rn50_ep50 16 4 False 4 False 16 True lin 1 0.1
# Output: outputd/<DATASET>/MTCoOp/<CFG>_<SHOTS>shots/<EXP>_csr<CLS_SAMPLE_RATE>/seed<S> (the reference's
# folder, "outputd" included); existing folders are skipped.
source "$(dirname "$0")/common.sh"
mtcoop_setup "$@"
CLS_SAMPLE_RATE=${12}

for SEED in 1 2 3
do
    DIR=outputd/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/${EXP}_csr${CLS_SAMPLE_RATE}/seed${SEED}
    run_unless_done "${DIR}" train_py "${SEED}" "${DIR}" "${MTCOOP_OPTS[@]}" \
        TRAINER.MTCOOP.CLS_SAMPLE_RATE ${CLS_SAMPLE_RATE}
done
