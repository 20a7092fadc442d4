#!/bin/bash
# CoOp few-shot training, seeds 1-3: bash scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC
#   e.g. bash scripts/coop/main.sh caltech101 rn50_ep50 end 16 1 False
# DATASET: configs/datasets/<DATASET>.yaml; CFG: configs/trainers/CoOp/<CFG>.yaml;
# CTP: class token position (end, middle or front); NCTX: context length; CSC: class-specific context.
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
require_data
enter_repo  # outputs go to the repository's output/, as when run from its root

TRAINER=CoOp
DATASET=$1
CFG=$2
CTP=$3
NCTX=$4
SHOTS=$5
CSC=$6

for SEED in 1 2 3
do
    DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed${SEED}
    if ! skip_existing "${DIR}"; then
        train_py "${SEED}" "${DIR}" \
            TRAINER.COOP.N_CTX ${NCTX} \
            TRAINER.COOP.CSC ${CSC} \
            TRAINER.COOP.CLASS_TOKEN_POSITION ${CTP} \
            DATASET.NUM_SHOTS ${SHOTS}
    fi
done
