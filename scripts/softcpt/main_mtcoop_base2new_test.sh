#!/bin/bash
# SoftCPT base-to-new, step 2: the models of main_mtcoop_base2new_train.sh (epoch LOADEP, default 50)
# on each task's new classes, seeds 1-3. Same arguments as main_mtcoop.sh.
# Output: output/base2new/<DATASET>/MTCoOp/<CFG>_<SHOTS>shots/<EXP>_loss/new/seed<S>.
source "$(dirname "$0")/common.sh"
mtcoop_setup "$@"
LOADEP=${LOADEP:-50}

for SEED in 1 2 3
do
    COMMON_DIR=output/base2new/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/${EXP}_loss
    DIR=${COMMON_DIR}/new/seed${SEED}
    run_unless_done "${DIR}" eval_py "${SEED}" "${DIR}" "${COMMON_DIR}/base/seed${SEED}" "${LOADEP}" \
        "${MTCOOP_OPTS[@]}" DATASET.SUBSAMPLE_CLASSES new
done
