#!/bin/bash
# bash scripts/sap/base2new_train.sh GPU DATASET SEED
# Base-to-novel, step 1: train SAP on the base classes (16 shots), then test on them.
# GPU becomes CUDA_VISIBLE_DEVICES. DATA (the folder holding the datasets) is read from the
# environment; the class descriptions from DESCRIPTIONS.DIR (python -m descriptions.download).
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
_require "$1" 1 "usage: $0 GPU DATASET SEED"
export CUDA_VISIBLE_DEVICES=$1
base2new_train SAP vit_b16_c2_ep20_batch4_4+4ctx "${@:2}"
