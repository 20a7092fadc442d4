#!/bin/bash
# bash scripts/language-prompting/reproduce_lp.sh DATASET SEED WEIGHTSPATH
# Base-to-novel with released deep language prompting (IVLP, text only) weights: WEIGHTSPATH/base/seedSEED, tested on the base, then
# the novel classes. The released files pickle Python objects: if you trust them, run with
# DASSL_TRUST_LEGACY_CHECKPOINTS=1 (their frozen-CLIP entries are skipped when loading).
# DATA (the folder holding the datasets) is read from the environment.
# Outputs go to output/ in the repository root, wherever the script is run from.
source "$(dirname "$0")/../lib/run.sh"
reproduce IVLP vit_b16_c2_ep5_batch4_4ctx_language_only 5 "$@"
