#!/bin/bash
# bash scripts/vpt/base2new_test_vpt.sh DATASET SEED
# Base-to-novel, step 2: test the deep vision prompting (VPT) model of step 1 on the novel classes.
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
base2new_test VPT vit_b16_c2_ep5_batch4_4 5 "$@"
