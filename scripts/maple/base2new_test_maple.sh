#!/bin/bash
# bash scripts/maple/base2new_test_maple.sh DATASET SEED
# Base-to-novel, step 2: test the MaPLe model of step 1 on the novel classes.
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
base2new_test MaPLe vit_b16_c2_ep5_batch4_2ctx 5 "$@"
