#!/bin/bash
# bash scripts/sap/xd_train.sh GPU DATASET SEED   (DATASET = imagenet)
# Cross-dataset / domain generalisation, step 1: train SAP on all classes (16 shots) with the
# cross-dataset config (prompt depth 3). The reference's run_dg.sh ran the main config instead and
# its test loaded from a folder its training never wrote; here xd_test.sh loads this run's model.
# GPU becomes CUDA_VISIBLE_DEVICES. DATA (the folder holding the datasets) is read from the environment.
source "$(dirname "$0")/../lib/run.sh"
_require "$1" 1 "usage: $0 GPU DATASET SEED"
export CUDA_VISIBLE_DEVICES=$1
xd_train SAP vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets "${@:2}"
