#!/bin/bash
# CUDA smoke check (at most 5 minutes): every registered trainer a few iterations with PREC fp16
# and amp on the tiny CLIP (loss finite, checkpoint reloads), then the CoOp-100 / CoCoOp / MaPLe
# train-step workloads of bench/train_step.py on ViT-B/16 shapes in fp16. One line per check;
# exit status 1 if one fails, or if there is no CUDA device. Arguments go to bench/cuda_check.py.
cd "$(dirname "$0")/.."
timeout --signal=INT 300 "${PYTHON:-python}" bench/cuda_check.py "$@"
status=$?
if [ "$status" = 124 ]; then
    echo "CUDA check: stopped after 5 minutes" >&2
fi
exit $status
