#!/bin/bash
# Zero-shot CLIP on a CoOp dataset (MVLPT's zeroshot.sh is CoOp's): bash scripts/mvlpt/zeroshot.sh DATASET CFG
#   e.g. bash scripts/mvlpt/zeroshot.sh caltech101 vit_b16
exec bash "$(dirname "$0")/../coop/zeroshot.sh" "$@"
