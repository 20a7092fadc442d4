#!/bin/bash
# bash scripts/independent-vlp/xd_test_ivlp.sh DATASET SEED
# Cross-dataset / domain generalisation, step 2: test the ImageNet Independent V-L prompting (IVLP) model on DATASET (all classes).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
# The reference loads epoch 2, which this 5-epoch config never saves (only model.pth.tar-5
# exists), so its script fails; the epoch that exists is loaded here.
xd_test IVLP vit_b16_c2_ep5_batch4_2+2ctx 5 "$@"
