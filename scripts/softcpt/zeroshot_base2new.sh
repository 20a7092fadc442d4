#!/bin/bash
# Zero-shot CLIP on the base or new classes of one task of a suite:
#   bash scripts/softcpt/zeroshot_base2new.sh DATASET CFG TID base|new
# Output: output/base2new/ZeroshotCLIP/<CFG>/<base|new>/<DATASET>-<TID>.
ZEROSHOT_SUB=${4:?usage: $0 DATASET CFG TID base|new} exec bash "$(dirname "$0")/zeroshot.sh" "$1" "$2" "$3"
