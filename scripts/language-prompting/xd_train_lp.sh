#!/bin/bash
# bash scripts/language-prompting/xd_train_lp.sh DATASET SEED   (DATASET = imagenet)
# Cross-dataset / domain generalisation, step 1: train deep language prompting (IVLP, text only) on all classes (16 shots).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
xd_train IVLP vit_b16_c2_ep5_batch4_4ctx_language_only "$@"
