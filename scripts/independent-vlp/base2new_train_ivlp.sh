#!/bin/bash
# bash scripts/independent-vlp/base2new_train_ivlp.sh DATASET SEED
# Base-to-novel, step 1: train Independent V-L prompting (IVLP) on the base classes (16 shots), then test on them.
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
base2new_train IVLP vit_b16_c2_ep5_batch4_2+2ctx "$@"
