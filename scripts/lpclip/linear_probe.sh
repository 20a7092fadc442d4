#!/bin/bash
# Linear probe, step 2: few-shot logistic regression on the features of feat_extractor.sh, 3 runs.
#   bash scripts/lpclip/linear_probe.sh
# Then e.g.: python parse_test_res.py output/lpclip/OxfordPets/shots_16
set -e
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}

FEATURE_DIR=${FEATURE_DIR:-output/lpclip/clip_feat}

for DATASET in OxfordPets OxfordFlowers FGVCAircraft DescribableTextures EuroSAT StanfordCars Food101 SUN397 Caltech101 UCF101 ImageNet
do
    $PYTHON scripts/lpclip/linear_probe.py \
        --dataset ${DATASET} \
        --feature_dir ${FEATURE_DIR} \
        --num_step 8 \
        --num_run 3 \
        --report_dir output/lpclip/report \
        --log_dir output/lpclip
done
