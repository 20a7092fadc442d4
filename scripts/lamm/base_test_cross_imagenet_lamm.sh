#!/bin/bash
# LAMM's 16-shot ImageNet models (base_train_lamm_all.sh) on ImageNet-Sketch/-V2/-A/-R, seeds 1-3
source "$(dirname "$0")/lib.sh"
cross_imagenet
