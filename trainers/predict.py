"""Classify images with a trained prompt (or zero-shot CLIP) and print the top-k classes.

    python -m trainers.predict --config-file configs/trainers/CoOp/vit_b16_ep50.yaml \
        --model-dir output/imagenet/CoOp/vit_b16_ep50_16shots/nctx16_cscFalse_ctpend/seed1 \
        --load-epoch 50 --classnames classnames.txt photos/ cat.jpg --topk 5

Without --model-dir it is zero-shot CLIP with --template (default: the dataset's template when a
--dataset-config-file is given, else "a photo of a {}."). --trainer names the trainer that saved
the model (default CoOp; any trainer built on trainers.base.PromptTrainer). Class names come from
--classnames (a file with one name per line, or a comma-separated list), else from the dataset
given by --dataset-config-file and --root (its label order, DATASET.SUBSAMPLE_CLASSES applied).
A class-specific context (CSC) needs the classes of training, in their label order.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Iterator, Optional, Sequence

import torch
from PIL import Image
from torch import Tensor

from dassl.cli import UserError, import_project_module, one_line_errors

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_TEMPLATE = "a photo of a {}."


def image_paths(paths: Sequence[str]) -> list[str]:
    """The given image files, and the image files under the given folders (sorted, recursive)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, files in sorted(os.walk(path)):
                found += [os.path.join(folder, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"No image or folder at {path}")
    if not found:
        raise FileNotFoundError(f"No images found in {list(paths)}")
    return found


def read_classnames(spec: str) -> list[str]:
    """A file with one class name per line, or a comma-separated list."""
    if os.path.isfile(spec):
        with open(spec) as f:
            return [line.strip() for line in f if line.strip()]
    return [name.strip() for name in spec.split(",") if name.strip()]


def setup_cfg(args: argparse.Namespace):
    from dassl.config import get_cfg_default

    cfg = get_cfg_default()
    import_project_module("train").extend_cfg(cfg)  # every project config key
    for path in (args.dataset_config_file, args.config_file):
        if path:
            cfg.merge_from_file(path)
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    return cfg


def build_predictor(cfg, trainer_name: str, classnames: list[str], model_dir: str, epoch, device: torch.device,
                    template: str) -> Callable[[Tensor], Tensor]:
    """images (B, 3, H, W) -> logits (B, n_cls)."""
    from dassl.engine import TRAINER_REGISTRY

    from .base import PromptTrainer, load_registered_state
    from .common import build_clip, l2_normalize
    from .zsclip import class_text_features

    if not model_dir:
        clip_model, _ = build_clip(cfg, "fp16", device)
        clip_model.to(device)
        text_features = class_text_features(clip_model, classnames, [template])
        return lambda image: clip_model.logit_scale.exp() * l2_normalize(clip_model.encode_image(image)) @ text_features.t()

    trainer = TRAINER_REGISTRY.get(trainer_name)
    if not issubclass(trainer, PromptTrainer):
        raise UserError(f"{trainer_name} is not a prompt-learning trainer (trainers.base.PromptTrainer)")
    clip_model, _ = build_clip(cfg, trainer.requested_precision(cfg), device)
    model = trainer.build_custom_clip(cfg, classnames, clip_model)
    module = trainer.registered_module(model)
    model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
    path = os.path.join(model_dir, trainer.registered_name, model_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Model not found at "{path}"')
    load_registered_state(module, path, trainer.class_dependent_keys, trainer.registered_name)
    model.to(device).eval()
    return model


def open_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # not an image, truncated, ...
        raise UserError(f'Cannot read image "{path}": {type(e).__name__}: {e}') from e


def batches(paths: list[str], transform, size: int) -> Iterator[tuple[list[str], Tensor]]:
    for start in range(0, len(paths), size):
        chunk = paths[start:start + size]
        yield chunk, torch.stack([transform(open_image(p)) for p in chunk])


@torch.no_grad()
def main(args: argparse.Namespace) -> list[tuple[str, list[tuple[str, float]]]]:
    """Print and return, per image, its top-k (class name, probability) pairs."""
    from dassl.data.transforms import build_transform

    from datasets.templates import template_for

    cfg = setup_cfg(args)
    if args.classnames:
        classnames = read_classnames(args.classnames)
    elif cfg.DATASET.NAME and cfg.DATASET.ROOT:
        from dassl.data.datasets import build_dataset

        classnames = build_dataset(cfg).classnames
    else:
        raise UserError("give --classnames, or --dataset-config-file and --root")
    template = args.template or (template_for(cfg) if cfg.DATASET.NAME else DEFAULT_TEMPLATE)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")
    predict = build_predictor(cfg, args.trainer, classnames, args.model_dir, args.load_epoch, device, template)

    transform = build_transform(cfg, is_train=False)
    topk = min(args.topk, len(classnames))
    results = []
    for paths, images in batches(image_paths(args.paths), transform, args.batch_size):
        probs = predict(images.to(device)).float().softmax(dim=-1)
        values, indices = probs.topk(topk, dim=-1)
        for path, vals, idxs in zip(paths, values.tolist(), indices.tolist()):
            ranked = [(classnames[i], p) for i, p in zip(idxs, vals)]
            results.append((path, ranked))
            print(path)
            for name, p in ranked:
                print(f"  {100 * p:6.2f}%  {name}")
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--config-file", type=str, default="", help="trainer config (backbone, input size, prompt keys)")
    parser.add_argument("--dataset-config-file", type=str, default="", help="dataset config (class names, template)")
    parser.add_argument("--root", type=str, default="", help="datasets folder (class names from the dataset)")
    parser.add_argument("--trainer", type=str, default="CoOp", help="trainer that saved --model-dir")
    parser.add_argument("--model-dir", type=str, default="", help="output dir of the training run; none: zero-shot")
    parser.add_argument("--load-epoch", type=int, help="epoch of the checkpoint (model.pth.tar-<epoch>)")
    parser.add_argument("--backbone", type=str, default="", help="CLIP model name or checkpoint path")
    parser.add_argument("--classnames", type=str, default="", help="file with one class per line, or a,b,c")
    parser.add_argument("--template", type=str, default="", help="zero-shot prompt template with {}")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config options")
    return parser


@one_line_errors
def cli(argv: Optional[Sequence[str]] = None) -> int:
    main(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
