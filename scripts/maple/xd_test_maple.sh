#!/bin/bash
# bash scripts/maple/xd_test_maple.sh DATASET SEED
# Cross-dataset / domain generalisation, step 2: test the ImageNet MaPLe model on DATASET (all classes).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
xd_test MaPLe vit_b16_c2_ep5_batch4_2ctx_cross_datasets 2 "$@"
