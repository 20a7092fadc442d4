#!/bin/bash
# bash scripts/maple/xd_train_maple.sh DATASET SEED   (DATASET = imagenet)
# Cross-dataset / domain generalisation, step 1: train MaPLe on all classes (16 shots).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
xd_train MaPLe vit_b16_c2_ep5_batch4_2ctx_cross_datasets "$@"
