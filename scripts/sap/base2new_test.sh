#!/bin/bash
# bash scripts/sap/base2new_test.sh GPU DATASET SEED [SUB]
# Base-to-novel, step 2: test the SAP model of step 1 (epoch 20) on the novel classes (SUB=new, the
# default), or, with SUB=all, generalized zero-shot: all classes with all their descriptions
# (output in test_all/; "* base_accuracy", "* new_accuracy" and "* hm" lines after the accuracy).
# The reference's script must be edited for GZS and passes an undefined key (TRAIN.GRADCAM).
# GPU becomes CUDA_VISIBLE_DEVICES. DATA (the folder holding the datasets) is read from the environment.
source "$(dirname "$0")/../lib/run.sh"
_require "$1" 1 "usage: $0 GPU DATASET SEED [SUB]"
export CUDA_VISIBLE_DEVICES=$1
base2new_test SAP vit_b16_c2_ep20_batch4_4+4ctx 20 "${@:2}"
