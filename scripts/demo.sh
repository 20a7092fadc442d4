#!/bin/bash
# CPU demo, a few minutes on 2 cores: a tiny random CLIP and a generated miniature EuroSAT
# (6 classes); CoOp trained on the 3 base classes (4 shots, 8 epochs) and evaluated on the 3 new
# ones, for 2 seeds, zero-shot CLIP evaluated on both; then parse_test_res.py's base-to-new table.
# Then CoOp on all 6 classes with 1, 2 and 4 shots (2 seeds), and scripts/plot_results.py draws the
# few-shot curve and the base/new/HM bars into <DEMO_DIR>/figures (PNG and PDF, tables beside).
#   bash scripts/demo.sh            (DEMO_DIR=output/demo by default; PYTHON=python)
# The tiny CLIP is random: CoOp learns the base classes (chance is 33%), while new-class
# accuracy, which relies on what CLIP knows, stays near chance. Each run's full log is
# <DEMO_DIR>/base2new/.../log.txt; the commands it prints are those used on real data.
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DEMO=${DEMO_DIR:-output/demo}
CFG=demo_cpu
EPOCHS=8  # OPTIM.MAX_EPOCH of the config: the checkpoint to evaluate
SHOTS=4
DATASET=eurosat
OUT=${DEMO}/base2new

mkdir -p "${DEMO}"
if [ ! -f "${DEMO}/tiny_vit.pt" ] || [ ! -d "${DEMO}/data/eurosat" ]; then
    echo "Writing the tiny CLIP checkpoint and the miniature dataset to ${DEMO}"
    $PYTHON -c "
from clip.testing import write_tiny_checkpoint
from datasets.miniature import make_miniature
write_tiny_checkpoint('${DEMO}/tiny_vit.pt', arch='ViT')
make_miniature('EuroSAT', '${DEMO}/data', n_classes=6, n_per_class=12)
"
fi
rm -rf "${OUT}"  # a fresh run each time (train.py would resume from the old checkpoints)

run() {  # run NAME train.py-arguments...: the command, then its accuracy (console output in NAME.out)
    local name=$1; shift
    local start=$SECONDS
    local args=(--root "${DEMO}/data" --backbone "${DEMO}/tiny_vit.pt"
                --dataset-config-file configs/datasets/${DATASET}.yaml
                --config-file configs/trainers/CoOp/${CFG}.yaml "$@")
    echo "  \$ python train.py ${args[*]}"
    $PYTHON train.py "${args[@]}" > "${DEMO}/${name}.out" 2>&1 || { cat "${DEMO}/${name}.out"; exit 1; }
    echo "  ${name}: $(grep '^\* accuracy' "${DEMO}/${name}.out" | tail -1) ($((SECONDS - start)) s)"
}

for SEED in 1 2
do
    COMMON=${DATASET}/shots_${SHOTS}/CoOp/${CFG}/seed${SEED}
    echo "CoOp, seed ${SEED}: train on the base classes (then test on them), test on the new classes"
    run coop_base_seed${SEED} --seed ${SEED} --trainer CoOp --output-dir ${OUT}/train_base/${COMMON} \
        DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base
    grep "^epoch \[" ${OUT}/train_base/${COMMON}/log.txt | sed -n '1p;$p' | sed 's/^/    /'
    run coop_new_seed${SEED} --seed ${SEED} --trainer CoOp --output-dir ${OUT}/test_new/${COMMON} \
        --model-dir ${OUT}/train_base/${COMMON} --load-epoch ${EPOCHS} --eval-only \
        DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES new
done

ZS=${DATASET}/shots_${SHOTS}/ZeroshotCLIP/${CFG}/seed1
echo "Zero-shot CLIP: test on the base and on the new classes"
for SUB in base new
do
    run zeroshot_${SUB} --seed 1 --trainer ZeroshotCLIP --output-dir ${OUT}/test_${SUB}/${ZS} --eval-only \
        DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES ${SUB}
done

FEWSHOT=${DEMO}/fewshot
rm -rf "${FEWSHOT}"
for K in 1 2 4
do
    for SEED in 1 2
    do
        echo "CoOp, ${K} shots, seed ${SEED}: train and test on all classes"
        run coop_${K}shots_seed${SEED} --seed ${SEED} --trainer CoOp \
            --output-dir ${FEWSHOT}/${DATASET}/CoOp/${CFG}_${K}shots/seed${SEED} DATASET.NUM_SHOTS ${K}
    done
done

echo
$PYTHON parse_test_res.py --base2new ${OUT}
echo
echo "Figures and tables:"
$PYTHON scripts/plot_results.py base2new ${OUT} --out ${DEMO}/figures
$PYTHON scripts/plot_results.py fewshot ${FEWSHOT} --out ${DEMO}/figures
