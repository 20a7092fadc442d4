#!/usr/bin/env python
"""Extract CLIP image features of one split for the linear probe (the reference's lpclip step 1).

    python scripts/lpclip/feat_extractor.py --split train --root $DATA --seed 1 \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/CoOp/rn50_val.yaml --output-dir output/lpclip/clip_feat

Writes <output-dir>/<DATASET.NAME>/<split>.npz with `feature_list` (N, D) (the image tower's raw
output, not normalised) and `label_list` (N,). The full split is used (no few-shot sampling) with
the test transform (resize, center crop, normalise). The backbone is MODEL.BACKBONE.NAME of the
config (RN50 in rn50_val.yaml; --backbone takes a model name or a checkpoint path). For ImageNet
the val split is the test set, as in the dataset.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import train  # noqa: E402  (extend_cfg: every project config key)
from dassl.cli import one_line_errors  # noqa: E402
from dassl.config import get_cfg_default  # noqa: E402
from dassl.data.data_manager import build_data_loader  # noqa: E402
from dassl.data.datasets import build_dataset  # noqa: E402
from dassl.data.transforms import build_transform  # noqa: E402
from dassl.utils import set_random_seed  # noqa: E402
from trainers.common import build_clip  # noqa: E402
from trainers.linear_probe import extract_features  # noqa: E402


def setup_cfg(args: argparse.Namespace):
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    if args.dataset_config_file:
        cfg.merge_from_file(args.dataset_config_file)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.seed:
        cfg.SEED = args.seed
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    cfg.merge_from_list(args.opts)
    # Features of the full splits: the few-shot draws happen later, in linear_probe.py.
    cfg.DATASET.NUM_SHOTS = -1
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    cfg.freeze()
    return cfg


def main(args: argparse.Namespace) -> str:
    cfg = setup_cfg(args)
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")

    dataset = build_dataset(cfg)
    data_source = {"train": dataset.train_x, "val": dataset.val, "test": dataset.test}[args.split]
    if not data_source:
        raise SystemExit(f"error: {cfg.DATASET.NAME} has no {args.split} split")
    loader = build_data_loader(
        cfg, sampler_type="SequentialSampler", data_source=data_source,
        batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=build_transform(cfg, is_train=False), is_train=False,
    )
    # As the reference: OpenAI's fp16 CLIP on CUDA (fp32 on CPU).
    clip_model, _ = build_clip(cfg, "fp16", device)
    features, labels = extract_features(clip_model.to(device), loader, device)

    out_dir = os.path.join(cfg.OUTPUT_DIR, cfg.DATASET.NAME)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{args.split}.npz")
    np.savez(path, feature_list=features, label_list=labels)
    print(f"Saved {features.shape[0]} features of dimension {features.shape[1]} to {path}")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    parser.add_argument("--split", type=str, choices=["train", "val", "test"], required=True, help="which split")
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    parser.add_argument("--backbone", type=str, default="", help="CLIP model name or checkpoint path")
    parser.add_argument("--num-shot", type=int, default=1, help="ignored (the few-shot draws are in linear_probe.py)")
    parser.add_argument("--eval-only", action="store_true", help="ignored (accepted as in the reference)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options")
    return parser


if __name__ == "__main__":
    sys.exit(one_line_errors(main)(build_parser().parse_args()))
