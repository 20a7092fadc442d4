# Shared body of the LAMM run scripts in scripts/lamm/ (sourced, never run on its own); built on
# scripts/lib/run.sh (DATA from the environment, outputs under the repository's output/).
#
# The three variants, as the LAMM repository runs them (train.py flags of its README):
#   lamm        --trainer CoOp  --triplet-loss --origin-clip  CoOp/vit_b16_ep50_ctxv1       folder LAMM
#   coop_lamm   --trainer CoOp  --triplet-loss                CoOp/vit_b16_ep50_ctxv1       folder CoOp
#   maple_lamm  --trainer MaPLe --triplet-loss                MaPLe/vit_b16_c2_ep5_batch4_2ctx  folder MaPLe
# The loops over shots, datasets and seeds can be narrowed from the environment: SHOTS_LIST
# (default "16 8 4 2 1"), DATASETS (default the 11 datasets), SEEDS (default "1 2 3").
source "$(dirname "${BASH_SOURCE[0]}")/../lib/run.sh"

LAMM_DATASETS="caltech101 dtd eurosat fgvc_aircraft food101 oxford_flowers oxford_pets stanford_cars ucf101 sun397 imagenet"

# variant VARIANT: sets NAME (the output folder's method name), TRAINER, CFG, LOADEP and FLAGS.
variant() {
    case "$1" in
        lamm) NAME=LAMM TRAINER=CoOp CFG=vit_b16_ep50_ctxv1 LOADEP=50 FLAGS=(--triplet-loss --origin-clip) ;;
        coop_lamm) NAME=CoOp TRAINER=CoOp CFG=vit_b16_ep50_ctxv1 LOADEP=50 FLAGS=(--triplet-loss) ;;
        maple_lamm) NAME=MaPLe TRAINER=MaPLe CFG=vit_b16_c2_ep5_batch4_2ctx LOADEP=5 FLAGS=(--triplet-loss) ;;
        *) echo "$0: unknown variant '$1' (lamm, coop_lamm or maple_lamm)" >&2; exit 1 ;;
    esac
}

# fewshot VARIANT: every shot count x dataset x seed on all classes, tested at the end of training.
# Output output/base/DATASET/shots_K/NAME/CFG/seedS (skipped when it exists), as the reference.
fewshot() {
    variant "$1"
    require_data
    enter_repo
    for SHOTS in ${SHOTS_LIST:-16 8 4 2 1}; do
        for DATASET in ${DATASETS:-$LAMM_DATASETS}; do
            for SEED in ${SEEDS:-1 2 3}; do
                DIR=output/base/${DATASET}/shots_${SHOTS}/${NAME}/${CFG}/seed${SEED}
                if skip_existing "${DIR}"; then continue; fi
                echo "Run this job and save the output to ${DIR}"
                train_py "${SEED}" "${DIR}" "${FLAGS[@]}" DATASET.NUM_SHOTS ${SHOTS}
            done
        done
    done
}

# class_set SET SUB: LAMM's set1 (SUB base) / set2 (SUB new) runs: 16 shots, --shots 16, label
# embeddings of one half of the classes, trained from scratch and tested on that half.
class_set() {
    variant lamm
    require_data
    enter_repo
    SHOTS=16
    for DATASET in ${DATASETS:-$LAMM_DATASETS}; do
        for SEED in ${SEEDS:-1 2 3}; do
            DIR=output/base2new_$1/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
            if skip_existing "${DIR}"; then continue; fi
            echo "Run this job and save the output to ${DIR}"
            train_py "${SEED}" "${DIR}" --shots ${SHOTS} "${FLAGS[@]}" \
                DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES $2
        done
    done
}

# base2new VARIANT train|test DATASET SEED: train on the base classes (16 shots), or test that
# model on the new classes (with their names: new classes have no label embeddings).
base2new() {
    variant "$1"
    local step=$2
    require_data
    _require "$3" DATASET "usage: $0 VARIANT DATASET SEED"
    _require "$4" SEED "usage: $0 VARIANT DATASET SEED"
    enter_repo
    DATASET=$3
    SEED=$4
    SHOTS=16
    MODEL_DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}/${NAME}/${CFG}/seed${SEED}
    if [ "$step" = train ]; then
        DIR=${MODEL_DIR}
        if skip_existing "${DIR}"; then return 0; fi
        echo "Run this job and save the output to ${DIR}"
        train_py "${SEED}" "${DIR}" "${FLAGS[@]}" DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base
    else
        DIR=output/base2new/test_new/${DATASET}/shots_${SHOTS}/${NAME}/${CFG}/seed${SEED}
        echo "Evaluating the model of ${MODEL_DIR}; output in ${DIR}"
        eval_py "${SEED}" "${DIR}" "${MODEL_DIR}" "${LOADEP}" "${FLAGS[@]}" \
            DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES new
    fi
}

# cross_imagenet: LAMM's 16-shot ImageNet models (fewshot lamm) tested on the ImageNet variants.
# Same 1,000 classes (Sketch, V2): the learned label embeddings are used; ImageNet-A/R (200
# classes) are tested with the class names (the reference fails there with a size mismatch).
cross_imagenet() {
    variant lamm
    require_data
    enter_repo
    SHOTS=16
    for DATASET in ${DATASETS:-imagenet_sketch imagenetv2 imagenet_a imagenet_r}; do
        for SEED in ${SEEDS:-1 2 3}; do
            MODEL_DIR=output/base/imagenet/shots_${SHOTS}/${NAME}/${CFG}/seed${SEED}
            DIR=output/cross/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
            echo "Evaluating the model of ${MODEL_DIR}; output in ${DIR}"
            eval_py "${SEED}" "${DIR}" "${MODEL_DIR}" "${LOADEP}" --triplet-loss DATASET.NUM_SHOTS ${SHOTS}
        done
    done
}
