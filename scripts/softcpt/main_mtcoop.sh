#!/bin/bash
# SoftCPT (MTCoOp) few-shot training on a multi-task suite, seeds 1-3:
#   bash scripts/softcpt/main_mtcoop.sh DATASET CFG SHOTS CLASS_N_CTX CLASS_CSC TASK_N_CTX TASK_CSC N_CTX CSC PG_TYPE PG_RATIO
#   NATA: bash scripts/softcpt/main_mtcoop.sh general10 rn50_ep50 16 0 False 4 False 16 False lin 1
#   NATS: ... 0 False 4 True 16 False lin 1; CATA/CSTA/CATS/CSTS: ... 4 False|True 4 False|True 16 True lin 1
# DATASET: configs/datasets/<DATASET>.yaml (general10, plant6, fashion20); CFG: configs/trainers/MTCoOp/<CFG>.yaml.
# Output: output/<DATASET>/MTCoOp/<CFG>_<SHOTS>shots/<EXP>_loss/seed<S>, EXP = cnctx.._ccsc.._tnctx.._tcsc..
# _nctx.._csc.._type.._ratio.. (the reference's folder names, "_loss" included); existing folders are skipped.
source "$(dirname "$0")/common.sh"
mtcoop_setup "$@"

for SEED in 1 2 3
do
    DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/${EXP}_loss/seed${SEED}
    run_unless_done "${DIR}" train_py "${SEED}" "${DIR}" "${MTCOOP_OPTS[@]}"
done
