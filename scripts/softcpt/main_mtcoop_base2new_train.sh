#!/bin/bash
# SoftCPT base-to-new, step 1: train on each task's base classes (first half), seeds 1-3. Same
# arguments as main_mtcoop.sh, e.g. bash scripts/softcpt/main_mtcoop_base2new_train.sh general10 rn50_ep50 16 0 False 4 False 16 False lin 1
# Output: output/base2new/<DATASET>/MTCoOp/<CFG>_<SHOTS>shots/<EXP>_loss/base/seed<S>.
source "$(dirname "$0")/common.sh"
mtcoop_setup "$@"

for SEED in 1 2 3
do
    DIR=output/base2new/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/${EXP}_loss/base/seed${SEED}
    run_unless_done "${DIR}" train_py "${SEED}" "${DIR}" "${MTCOOP_OPTS[@]}" DATASET.SUBSAMPLE_CLASSES base
done
