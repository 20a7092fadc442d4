#!/bin/bash
# bash scripts/vpt/base2new_train_vpt.sh DATASET SEED
# Base-to-novel, step 1: train deep vision prompting (VPT) on the base classes (16 shots), then test on them.
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
base2new_train VPT vit_b16_c2_ep5_batch4_4 "$@"
