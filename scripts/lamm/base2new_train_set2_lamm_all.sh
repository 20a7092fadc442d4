#!/bin/bash
# LAMM's continual set 2 (the other half, trained from scratch), 16 shots x 11 datasets x seeds 1-3
source "$(dirname "$0")/lib.sh"
class_set set2 new
