#!/bin/bash
# Base-to-new, step 1: bash scripts/lamm/base2new_train.sh VARIANT DATASET SEED (VARIANT: lamm, coop_lamm, maple_lamm)
source "$(dirname "$0")/lib.sh"
base2new "$1" train "${@:2}"
