#!/bin/bash
# bash scripts/vpt/xd_train_vpt.sh DATASET SEED   (DATASET = imagenet)
# Cross-dataset / domain generalisation, step 1: train deep vision prompting (VPT) on all classes (16 shots).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
xd_train VPT vit_b16_c2_ep5_batch4_4 "$@"
