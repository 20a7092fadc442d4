# Shared body of the run scripts in scripts/<method>/, sourced by them (never run on its own).
#
# Each script there is a thin wrapper: it sources this file, sets RUN_STYLE when it is a CoOp /
# CoCoOp script, and calls one function with its reference values, then its own arguments:
#     source "$(dirname "$0")/../lib/run.sh"
#     base2new_train MaPLe vit_b16_c2_ep5_batch4_2ctx "$@"
# so that the train.py command lines, output folders, messages and skip / re-run behaviour are
# those of the reference repositories' scripts. They come in two styles:
#
#   RUN_STYLE=maple (the default), the MaPLe repository's scripts (MaPLe, IVLP, VPT, language
#     prompting): DATASET and SEED (and WEIGHTSPATH) are required; every value reaches train.py as
#     one argument. An existing output folder: base2new_train resumes into it, base2new_test and
#     reproduce* evaluate again, xd_train and xd_test skip the job.
#   RUN_STYLE=coop, the CoOp / CoCoOp repositories' scripts: arguments are not checked; SEED and
#     the output and model folders are expanded unquoted (word-split) as there; a job whose output
#     folder exists is skipped.
#
# Both: DATA (the datasets folder) must be set and is made absolute (WEIGHTSPATH too), relative to
# the folder the script is called from; then the working directory is the repository root, so
# outputs go to its output/ wherever the script is run from. PYTHON (default python) runs train.py.
# As in the reference scripts, the functions set TRAINER, CFG, SHOTS, LOADEP, DATASET, SEED, SUB,
# DIR, MODEL_DIR, ... as globals, and leave the trainer, config and dataset names unquoted.

set -e
RUN_STYLE=maple

# _require VALUE NAME MESSAGE: stop as bash's ${NAME:?MESSAGE} stops the reference scripts: the
# message names the script that was run (at its line calling this library); exit status 1.
_require() {
    if [ -z "$1" ]; then
        echo "$0: line ${BASH_LINENO[${#BASH_LINENO[@]} - 2]}: $2: $3" >&2
        exit 1
    fi
}

# require_data: DATA must be set; it is made absolute.
require_data() {
    if [ "$RUN_STYLE" = coop ]; then
        _require "$DATA" DATA "set DATA to your datasets folder"
    else
        _require "$DATA" DATA "set DATA to the folder holding the datasets"
    fi
    DATA=$(realpath "$DATA")
}

# enter_repo: the repository root becomes the working directory; PYTHON defaults to python.
enter_repo() {
    cd "$(dirname "$0")/../.."
    PYTHON=${PYTHON:-python}
}

# skip_existing DIR: true, saying so, when the output folder DIR exists (the job is skipped).
skip_existing() {
    if [ -d "$1" ]; then
        echo "Oops! The results exist at $1 (so skip this job)"
        return 0
    fi
    return 1
}

# train_py SEED DIR [ARG...]: $PYTHON train.py on TRAINER's CFG and DATASET, output in DIR, then
# ARG... as given.
train_py() {
    local -a seed=("$1") dir=("$2")
    if [ "$RUN_STYLE" = coop ]; then
        seed=($1) dir=($2)
    fi
    shift 2
    $PYTHON train.py \
        --root "${DATA}" \
        --seed "${seed[@]}" \
        --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir "${dir[@]}" \
        "$@"
}

# eval_py SEED DIR MODEL_DIR LOADEP [ARG...]: train_py evaluating the model saved in MODEL_DIR at
# epoch LOADEP.
eval_py() {
    local seed=$1 dir=$2 loadep=$4
    local -a model=("$3")
    if [ "$RUN_STYLE" = coop ]; then
        model=($3)
    fi
    shift 4
    train_py "$seed" "$dir" --model-dir "${model[@]}" --load-epoch ${loadep} --eval-only "$@"
}

# _begin USAGE TRAINER CFG LOADEP ARG...: the reference scripts' start. DATA; WEIGHTSPATH (the
# third ARG) when USAGE names it; the repository root; TRAINER, CFG, SHOTS=16, LOADEP (unless
# empty); DATASET and SEED, the first two ARGs (required in the maple style).
_begin() {
    local usage=$1 trainer=$2 cfg=$3 loadep=$4
    shift 4
    require_data
    if [[ $usage == *WEIGHTSPATH ]]; then
        _require "$3" 3 "usage: $0 $usage"
        WEIGHTSPATH=$(realpath "$3")
    fi
    enter_repo
    TRAINER=$trainer
    CFG=$cfg
    SHOTS=16
    if [ -n "$loadep" ]; then
        LOADEP=$loadep
    fi
    if [ "$RUN_STYLE" != coop ]; then
        _require "$1" 1 "usage: $0 $usage"
        _require "$2" 2 "usage: $0 $usage"
    fi
    DATASET=$1
    SEED=$2
}

# base2new_train TRAINER CFG DATASET SEED: train on the base classes (16 shots), then test on them.
base2new_train() {
    _begin "DATASET SEED" "$1" "$2" "" "${@:3}"
    DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
    if [ "$RUN_STYLE" = coop ]; then
        if skip_existing "${DIR}"; then return 0; fi
    elif [ -d "${DIR}" ]; then
        echo "Results are available in ${DIR}. Resuming..."
    else
        echo "Run this job and save the output to ${DIR}"
    fi
    train_py "${SEED}" "${DIR}" DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base
}

# base2new_test TRAINER CFG LOADEP DATASET SEED [SUB]: test the model of base2new_train (epoch
# LOADEP) on the new classes (SUB new, the default), or on all classes (SUB all: generalized
# zero-shot, output in test_all/, the accuracy also split into base / new / HM).
base2new_test() {
    _begin "DATASET SEED" "$@"
    SUB=${6:-new}
    local -a gzs=()
    if [ "$SUB" = all ]; then
        gzs=(TEST.EVALUATOR GZSClassification)
    fi
    COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
    MODEL_DIR=output/base2new/train_base/${COMMON_DIR}
    DIR=output/base2new/test_${SUB}/${COMMON_DIR}
    if [ "$RUN_STYLE" = coop ]; then
        if skip_existing "${DIR}"; then return 0; fi
    else
        echo "Evaluating the model of ${MODEL_DIR}; output in ${DIR}"
    fi
    eval_py "${SEED}" "${DIR}" "${MODEL_DIR}" "${LOADEP}" \
        DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES ${SUB} "${gzs[@]}"
}

# xd_train TRAINER CFG DATASET SEED: train on all classes of DATASET (imagenet), 16 shots.
xd_train() {
    _begin "DATASET SEED" "$1" "$2" "" "${@:3}"
    DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
    if skip_existing "${DIR}"; then return 0; fi
    train_py "${SEED}" "${DIR}" DATASET.NUM_SHOTS ${SHOTS}
}

# xd_test TRAINER CFG LOADEP DATASET SEED: test the ImageNet model of xd_train (epoch LOADEP) on
# DATASET (all classes).
xd_test() {
    _begin "DATASET SEED" "$@"
    MODEL_DIR=output/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
    DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
    if skip_existing "${DIR}"; then return 0; fi
    eval_py "${SEED}" "${DIR}" "${MODEL_DIR}" "${LOADEP}"
}

# reproduce TRAINER CFG LOADEP DATASET SEED WEIGHTSPATH: test released base-to-new weights
# (WEIGHTSPATH/base/seedSEED, epoch LOADEP) on the base, then the new classes.
reproduce() {
    _begin "DATASET SEED WEIGHTSPATH" "$@"
    MODEL_DIR=${WEIGHTSPATH}/base/seed${SEED}
    for SUB in base new; do
        DIR=output/base2new/test_${SUB}/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
        echo "Evaluating the released model on the ${SUB} classes; output in ${DIR}"
        eval_py "${SEED}" "${DIR}" "${MODEL_DIR}" "${LOADEP}" \
            DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES ${SUB}
    done
}

# reproduce_xd TRAINER CFG LOADEP DATASET SEED WEIGHTSPATH: test released ImageNet weights
# (WEIGHTSPATH/seedSEED, epoch LOADEP) on DATASET (all classes).
reproduce_xd() {
    _begin "DATASET SEED WEIGHTSPATH" "$@"
    MODEL_DIR=${WEIGHTSPATH}/seed${SEED}
    DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
    echo "Evaluating the released model on ${DATASET}; output in ${DIR}"
    eval_py "${SEED}" "${DIR}" "${MODEL_DIR}" "${LOADEP}"
}

# ---------------------------------------------------------------- MVLPT (scripts/mvlpt/*.sh)
# The 11 CoOp datasets of MVLPT's source set (task ids in this order).
MVLPT_COOP_SOURCES=ImageNet,Caltech101,Food101,StanfordCars,OxfordPets,OxfordFlowers,FGVCAircraft,SUN397,DescribableTextures,EuroSAT,UCF101
# The 20 ELEVATER tasks.
MVLPT_ELEVATER_TASKS=hateful-memes,cifar-10,mnist,oxford-flower-102,oxford-iiit-pets,resisc45_clip,country211,food-101,stanford-cars,fer-2013,caltech-101,dtd,voc-2007-classification,cifar-100,fgvc-aircraft-2013b-variants102,patch-camelyon,rendered-sst2,gtsrb,eurosat_clip,kitti-distance

# mvlpt_begin USAGE NARGS ARG...: DATA, the repository root, OUTPUT (default output), and the
# arguments TRAINER (the prompt family: CoOp, VPT, UPT or COCOOP), CFG, NCTX, SHOTS, then the
# script's own. Sets MVLPT_OPTS to the family's options as the reference scripts pass them.
mvlpt_begin() {
    local usage=$1 nargs=$2
    shift 2
    require_data
    enter_repo
    local i
    for ((i = 1; i <= nargs; i++)); do
        _require "${!i}" "$i" "usage: $0 $usage"
    done
    OUTPUT=${OUTPUT:-output}
    TRAINER=$1
    CFG=$2
    NCTX=$3
    SHOTS=$4
    local -a family
    case "$TRAINER" in
        CoOp) family=(TRAINER.MVLPT.COOP.N_CTX "$NCTX" TRAINER.MVLPT.VPT.N_CTX 0 TRAINER.CUT_CONTEXTLEN True) ;;
        VPT) family=(TRAINER.MVLPT.COOP.N_CTX 0 TRAINER.MVLPT.VPT.N_CTX "$NCTX") ;;
        UPT) family=(TRAINER.MVLPT.COOP.N_CTX "$NCTX" TRAINER.MVLPT.VPT.N_CTX "$NCTX" TRAINER.CUT_CONTEXTLEN True) ;;
        COCOOP) family=(TRAINER.MVLPT.COCOOP.N_CTX "$NCTX" TRAINER.MVLPT.COOP.N_CTX 0 TRAINER.MVLPT.VPT.N_CTX 0) ;;
        *) echo "$0: TRAINER must be CoOp, VPT, UPT or COCOOP (the prompt family), got '$TRAINER'" >&2; exit 1 ;;
    esac
    MVLPT_OPTS=("${family[@]}" TRAINER.MVLPT.COOP.CLASS_TOKEN_POSITION middle TRAINER.MVLPT.COOP.CSC False
                TEST.NO_TEST False TEST.FINAL_MODEL best_val)
}

# mvlpt_py SEED DIR FLAG...: $PYTHON train.py with the MVLPT trainer, CFG, output in DIR, the
# flags given, then the family's options.
mvlpt_py() {
    local seed=$1 dir=$2
    shift 2
    $PYTHON train.py \
        --root "${DATA}" \
        --seed "${seed}" \
        --trainer MVLPT \
        --config-file "configs/trainers/MVLPT/${CFG}.yaml" \
        --output-dir "${dir}" \
        --shots "${SHOTS}" \
        "$@" \
        "${MVLPT_OPTS[@]}"
}

# mvlpt_model_dir DEFAULT: the source prompt folder for a target run: MODEL_DIR from the
# environment, else DEFAULT; "none" trains from scratch. Sets MODEL_ARGS.
mvlpt_model_dir() {
    local dir=${MODEL_DIR:-$1}
    MODEL_ARGS=()
    if [ "$dir" != none ]; then
        MODEL_ARGS=(--model-dir "$dir")
    fi
}
