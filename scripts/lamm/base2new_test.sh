#!/bin/bash
# Base-to-new, step 2 (new classes): bash scripts/lamm/base2new_test.sh VARIANT DATASET SEED
source "$(dirname "$0")/lib.sh"
base2new "$1" test "${@:2}"
