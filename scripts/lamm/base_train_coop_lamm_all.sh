#!/bin/bash
# CoOp+LAMM, 1/2/4/8/16 shots x 11 datasets x seeds 1-3: bash scripts/lamm/base_train_coop_lamm_all.sh
source "$(dirname "$0")/lib.sh"
fewshot coop_lamm
