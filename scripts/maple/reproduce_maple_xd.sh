#!/bin/bash
# bash scripts/maple/reproduce_maple_xd.sh DATASET SEED WEIGHTSPATH
# Cross-dataset / domain generalisation with the released ImageNet MaPLe weights at
# WEIGHTSPATH/seedSEED. The released files pickle Python objects: if you trust them, run with
# DASSL_TRUST_LEGACY_CHECKPOINTS=1 (their frozen-CLIP entries are skipped when loading).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
reproduce_xd MaPLe vit_b16_c2_ep5_batch4_2ctx_cross_datasets 2 "$@"
