#!/bin/bash
# LAMM's continual set 1 (the base half of the classes), 16 shots x 11 datasets x seeds 1-3
source "$(dirname "$0")/lib.sh"
class_set set1 base
