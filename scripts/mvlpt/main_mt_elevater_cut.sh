#!/bin/bash
# MVLPT multitask training on the 20 ELEVATER tasks, seeds 1-3:
#   bash scripts/mvlpt/main_mt_elevater_cut.sh TRAINER CFG NCTX SHOTS
#   e.g. bash scripts/mvlpt/main_mt_elevater_cut.sh VPT vit_b16 16 5
# MODEL_DIR=<source prompt folder> initialises from it (multitask prompt adaptation). As the
# reference's ELEVATER multitask loader: batches of 64 in a fixed order (no shuffling).
# Output: $OUTPUT (default output)/CoCoOp_mt_20/<TRAINER>/<CFG>_<SHOTS>shots/nctx<NCTX>_csc_ctp/seed<S>.
source "$(dirname "$0")/../lib/run.sh"
mvlpt_begin "TRAINER CFG NCTX SHOTS" 4 "$@"
mvlpt_model_dir none
for SEED in 1 2 3
do
    DIR=${OUTPUT}/CoCoOp_mt_20/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc_ctp/seed${SEED}
    if ! skip_existing "${DIR}"; then
        mvlpt_py "${SEED}" "${DIR}" --dataset "${MVLPT_ELEVATER_TASKS}" --multi-task "${MODEL_ARGS[@]}" \
            DATALOADER.TRAIN_X.BATCH_SIZE 64 DATALOADER.TRAIN_X.SAMPLER SequentialSampler
    fi
done
