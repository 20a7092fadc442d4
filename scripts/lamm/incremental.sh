#!/bin/bash
# Class-incremental learning: LAMM label embeddings trained stage by stage on N_STAGES disjoint
# class groups, merged and tested after each stage on all classes seen so far, with zero-shot
# CLIP and CoOp (sequential fine-tuning) as baselines (scripts/lamm/incremental.py).
#
#   DATA=/path/to/datasets bash scripts/lamm/incremental.sh DATASET SEED [N_STAGES] [KEY VALUE ...]
#
# N_STAGES defaults to 10 (CIFAR-100: 10 stages of 10 classes); 2 stages are LAMM's set1/set2.
# 16 shots, configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml. Output (and the table of accuracies,
# results.txt / results.json): output/incremental/DATASET/stages_N_STAGES/seedSEED, or OUTPUT_DIR.
source "$(dirname "$0")/../lib/run.sh"

require_data
_require "$1" 1 "usage: $0 DATASET SEED [N_STAGES] [KEY VALUE ...]"
_require "$2" 2 "usage: $0 DATASET SEED [N_STAGES] [KEY VALUE ...]"
if [ -n "$OUTPUT_DIR" ]; then
    OUTPUT_DIR=$(realpath -m "$OUTPUT_DIR")
fi
enter_repo
DATASET=$1
SEED=$2
STAGES=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
DIR=${OUTPUT_DIR:-output/incremental/${DATASET}/stages_${STAGES}/seed${SEED}}
echo "Class-incremental run in ${STAGES} stages; output in ${DIR}"
$PYTHON scripts/lamm/incremental.py \
    --root "${DATA}" \
    --dataset ${DATASET} \
    --seed ${SEED} \
    --stages ${STAGES} \
    --output-dir "${DIR}" \
    "$@"
