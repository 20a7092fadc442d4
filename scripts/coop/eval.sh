#!/bin/bash
# Evaluate the ImageNet-trained CoOp models (16 shots, M=16, generic context, end) on another
# dataset, seeds 1-3: bash scripts/coop/eval.sh DATASET CFG
#   e.g. bash scripts/coop/eval.sh imagenetv2 rn50_ep50
# The models are read from output/imagenet/CoOp/<CFG>_16shots/nctx16_cscFalse_ctpend/seed<S>,
# epoch 50 (where scripts/coop/main.sh imagenet <CFG> end 16 16 False writes them; the released
# CoOp weights go there too). Re-running writes a new timestamped log next to the old one.
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop
require_data
enter_repo

TRAINER=CoOp
SHOTS=16
NCTX=16
CSC=False
CTP=end

DATASET=$1
CFG=$2

for SEED in 1 2 3
do
    eval_py "${SEED}" \
        "output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/${DATASET}/seed${SEED}" \
        "output/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed${SEED}" \
        50 \
        TRAINER.COOP.N_CTX ${NCTX} \
        TRAINER.COOP.CSC ${CSC} \
        TRAINER.COOP.CLASS_TOKEN_POSITION ${CTP}
done
