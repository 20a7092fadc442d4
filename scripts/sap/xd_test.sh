#!/bin/bash
# bash scripts/sap/xd_test.sh GPU DATASET SEED
# Cross-dataset / domain generalisation, step 2: test the ImageNet SAP model of xd_train.sh
# (epoch 20) on DATASET, all classes (the 10 other datasets, or imagenetv2 / imagenet_sketch /
# imagenet_a / imagenet_r), with DATASET's descriptions.
# GPU becomes CUDA_VISIBLE_DEVICES. DATA (the folder holding the datasets) is read from the environment.
source "$(dirname "$0")/../lib/run.sh"
_require "$1" 1 "usage: $0 GPU DATASET SEED"
export CUDA_VISIBLE_DEVICES=$1
xd_test SAP vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets 20 "${@:2}"
