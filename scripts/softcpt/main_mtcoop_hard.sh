#!/bin/bash
# SoftCPT's hard-sharing baselines (MTCoOpHard), seeds 1-3:
#   bash scripts/softcpt/main_mtcoop_hard.sh DATASET CFG SHOTS N_CTX CSC TSC
#   CoOp-MT (one prompt for all): ... 16 False False; CoOp-CA (per task): ... 16 False True;
#   CoOp-CS (per class): ... 16 True False. CFG: configs/trainers/MTCoOpHard/<CFG>.yaml.
# Output: output/<DATASET>/MTCoOpHard/<CFG>_<SHOTS>shots/nctx<N_CTX>_csc<CSC>_tsc<TSC>/seed<S>.
source "$(dirname "$0")/common.sh"
suite_setup MTCoOpHard "$1" "$2" "$3"
N_CTX=$4
CSC=$5
TSC=$6

for SEED in 1 2 3
do
    DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${N_CTX}_csc${CSC}_tsc${TSC}/seed${SEED}
    run_unless_done "${DIR}" train_py "${SEED}" "${DIR}" \
        TRAINER.MTCOOPH.N_CTX ${N_CTX} \
        TRAINER.MTCOOPH.CSC ${CSC} \
        TRAINER.MTCOOPH.TSC ${TSC} \
        DATASET.NUM_SHOTS ${SHOTS}
done
