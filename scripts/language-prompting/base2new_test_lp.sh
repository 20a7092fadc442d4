#!/bin/bash
# bash scripts/language-prompting/base2new_test_lp.sh DATASET SEED
# Base-to-novel, step 2: test the deep language prompting (IVLP, text only) model of step 1 on the novel classes.
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
base2new_test IVLP vit_b16_c2_ep5_batch4_4ctx_language_only 5 "$@"
