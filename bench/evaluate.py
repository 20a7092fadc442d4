"""CoOp evaluation: reference-style vs ours (text once per evaluation, image-feature cache).

A random ViT-B/16-shaped CLIP (written once as an OpenAI-format fp16 state dict) and a generated
FolderDataset of JPEGs (100 classes, 10 test images each by default), evaluated with the real
DataManager test loader and Classification evaluator, fp32 on CPU. Passes:
  reference-style   each batch: the image tower (OpenAI's sequence-first blocks) and the class
                    prompts re-encoded on all 77 positions, as the reference's model forward does;
  ours, 1st pass    CoOp trainer.test(): text features once, images decoded and encoded, the
                    features written to the cache;
  ours, 2nd pass    the same trainer.test() again: features read from the cache (no image read);
  ours, new trainer a new CoOp trainer (another seed, the same context loaded), the weights digest
                    not memoised: what a later run pays (hashing the weights file, listing the
                    images, reading the cache).
The outputs of all passes are compared. Target: the 2nd pass takes < 5% of the 1st.

--trainer SAP: the same data with synthetic class descriptions (~8.5 per class, as
bench/train_step.py), SAP's main config. Passes: reference-style (each batch re-encodes every
description sentence on 77 positions with the deep prompts, and runs OpenAI's blocks in the prompted
image tower, as the reference's forward) and ours (trainer.test(): the description features once
per evaluation, the fast text path); SAP's image tower is prompted, so there is no feature cache.

    python bench/evaluate.py [--quick] [--classes 100] [--per-class 10] [--model ViT-B/16]
                             [--threads N] [--data-dir DIR] [--trainer CoOp|SAP]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from typing import Callable, List, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import clip.clip as clip_module  # noqa: E402
import train  # noqa: E402
from clip.model import CLIP, convert_weights  # noqa: E402
from dassl.config import get_cfg_default  # noqa: E402
from dassl.engine import build_trainer  # noqa: E402
from text_encoder import CLASS_NAMES  # noqa: E402
from train_step import (  # noqa: E402
    full_prompts, ref_image, ref_sap_forward, ref_text, synthetic_descriptions,
)
from trainers.common import l2_normalize  # noqa: E402

REPO = os.path.dirname(HERE)
MODELS = {  # vision width, patch size: ViT-B/32 has 4.5x fewer image tokens than ViT-B/16
    "ViT-B/16": (768, 16),
    "ViT-B/32": (768, 32),
}


def write_weights(path: str, model_name: str) -> str:
    """A random CLIP of `model_name`'s shapes, saved as OpenAI ships weights (fp16 where it has fp16)."""
    if os.path.isfile(path):
        return path
    width, patch = MODELS[model_name]
    torch.manual_seed(0)
    model = CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=width,
                 vision_patch_size=patch, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=12)
    convert_weights(model)
    torch.save(model.state_dict(), path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def write_dataset(folder: str, classes: int, per_class: int) -> str:
    """FolderDataset layout: train/<class>/ (1 image, it names the classes), test/<class>/ (per_class).

    320x240 JPEGs: a class colour, a gradient and noise, so decoding costs what a photo costs.
    """
    marker = os.path.join(folder, f".complete-{classes}x{per_class}")
    if os.path.isfile(marker):
        return folder
    rng = np.random.default_rng(0)
    names = [CLASS_NAMES[i % len(CLASS_NAMES)].replace(" ", "_") + ("" if i < len(CLASS_NAMES) else f"_{i}")
             for i in range(classes)]
    ramp = np.linspace(0, 1, 320)[None, :, None]
    for split, count in (("train", 1), ("test", per_class)):
        for c, name in enumerate(names):
            directory = os.path.join(folder, split, name)
            os.makedirs(directory, exist_ok=True)
            colour = rng.uniform(0, 255, size=3)
            for i in range(count):
                noise = rng.normal(0, 40, size=(240, 320, 3))
                pixels = np.clip(colour * (0.5 + ramp) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(os.path.join(directory, f"{i:04d}.jpg"), quality=90)
    open(marker, "w").close()
    return folder


def make_cfg(data_dir: str, weights: str, cache_dir: str, seed: int, workers: int, trainer: str = "CoOp",
             extra: tuple = ()):
    config = {"CoOp": "CoOp/vit_b16_ep50.yaml", "SAP": "SAP/vit_b16_c2_ep20_batch4_4+4ctx.yaml"}[trainer]
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs/trainers", config))
    cfg.merge_from_list([
        "DATASET.NAME", "FolderDataset", "DATASET.ROOT", data_dir, "DATASET.FOLDER.DIR", "images",
        "MODEL.BACKBONE.NAME", weights, "TRAINER.NAME", trainer, "SEED", seed, "OUTPUT_DIR", "",
        "DATALOADER.NUM_WORKERS", workers, "TEST.IMAGE_FEATURE_CACHE_DIR", cache_dir, "VERBOSE", False, *extra,
    ])
    cfg.freeze()
    return cfg


def quietly(fn: Callable):
    """fn() with its stdout (trainer and evaluator messages) captured; returns (result, text)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = fn()
    return result, buffer.getvalue()


def capture_outputs(trainer) -> List[Tensor]:
    """Route the evaluator's inputs into a list (cleared by the caller between passes)."""
    outputs: List[Tensor] = []
    process = trainer.evaluator.process
    trainer.evaluator.process = lambda output, label: (outputs.append(output.detach().clone()), process(output, label))
    return outputs


@torch.no_grad()
def reference_test(trainer) -> float:
    """The reference's evaluation loop: model(image) recomputes both towers and the prompts."""
    model = trainer.model
    learner, clip_model = model.prompt_learner, model.clip
    trainer.set_model_mode("eval")
    trainer.evaluator.reset()
    for batch in trainer.test_loader:
        image, label = trainer.parse_batch_test(batch)
        image_features = l2_normalize(ref_image(clip_model, image))
        text_features = l2_normalize(ref_text(clip_model, full_prompts(learner, learner.ctx), learner.eot))
        trainer.evaluator.process(clip_model.logit_scale.exp() * image_features @ text_features.t(), label)
    return list(trainer.evaluator.evaluate().values())[0]


def cache_lines(text: str) -> List[str]:
    return [line for line in text.splitlines() if "Image feature cache" in line]


def timed(fn: Callable) -> Tuple[float, float, str]:
    start = time.perf_counter()
    accuracy, text = quietly(fn)
    return time.perf_counter() - start, accuracy, text


@torch.no_grad()
def sap_reference_test(trainer) -> float:
    """The reference's SAP evaluation: every batch re-encodes all description sentences."""
    model = trainer.model
    trainer.set_model_mode("eval")
    trainer.evaluator.reset()
    for batch in trainer.test_loader:
        image, label = trainer.parse_batch_test(batch)
        trainer.evaluator.process(ref_sap_forward(model.clip, model.prompts, model, image)[0], label)
    return list(trainer.evaluator.evaluate().values())[0]


def sap_main(args, weights: str) -> None:
    folder = os.path.join(args.data_dir, "images")
    names = sorted(os.listdir(os.path.join(folder, "train")))
    descriptions = synthetic_descriptions([n.replace("_", " ") for n in names])
    path = os.path.join(args.data_dir, f"descriptions-{args.classes}.json")
    with open(path, "w") as f:
        json.dump(dict(zip(descriptions.classnames, descriptions.per_class)), f)
    n_images = args.classes * args.per_class
    print(f"SAP evaluation of {n_images} generated JPEGs, {args.classes} classes, {len(descriptions.flat)} "
          f"descriptions, random {args.model}-shaped CLIP, fp32 CPU, {torch.get_num_threads()} threads, "
          f"{args.workers} loader workers, test batch 100, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as cache_dir:
        cfg = make_cfg(args.data_dir, weights, cache_dir, 1, args.workers, "SAP", ("DESCRIPTIONS.FILE", path))
        trainer, _ = quietly(lambda: build_trainer(cfg))
        outputs = capture_outputs(trainer)
        rows, results = [], {}
        for label, fn in (("reference-style", lambda: sap_reference_test(trainer)), ("ours", trainer.test)):
            outputs.clear()
            seconds, accuracy, _ = timed(fn)
            results[label] = torch.cat(outputs)
            rows.append((label, seconds, accuracy))
    print(f"{'pass':<16} {'seconds':>8} {'speed-up':>8} {'accuracy':>8} {'max |logit diff|':>16}")
    for label, seconds, accuracy in rows:
        diff = (results[label] - results["reference-style"]).abs().max().item()
        print(f"{label:<16} {seconds:8.2f} {rows[0][1] / seconds:7.2f}x {accuracy:7.1f}% {diff:16.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=10, help="test images per class")
    parser.add_argument("--model", choices=sorted(MODELS), default="ViT-B/16")
    parser.add_argument("--quick", action="store_true", help="20 classes x 5 images, ViT-B/32 shapes")
    parser.add_argument("--trainer", choices=["CoOp", "SAP"], default="CoOp")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "promptkit_bench_evaluate"),
                        help="generated images and weights (reused across runs)")
    args = parser.parse_args()
    if args.quick:
        args.classes, args.per_class, args.model = 20, 5, "ViT-B/32"
    if args.threads:
        torch.set_num_threads(args.threads)

    os.makedirs(args.data_dir, exist_ok=True)
    weights = write_weights(os.path.join(args.data_dir, args.model.replace("/", "-") + "-random.pt"), args.model)
    write_dataset(os.path.join(args.data_dir, "images"), args.classes, args.per_class)
    if args.trainer == "SAP":
        sap_main(args, weights)
        return
    n_images = args.classes * args.per_class
    print(f"CoOp evaluation of {n_images} generated JPEGs (320x240), {args.classes} classes, random "
          f"{args.model}-shaped CLIP, fp32 CPU, {torch.get_num_threads()} threads, {args.workers} loader "
          f"workers, test batch 100, load average {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as cache_dir:
        cfg = make_cfg(args.data_dir, weights, cache_dir, seed=1, workers=args.workers)
        trainer, _ = quietly(lambda: build_trainer(cfg))
        outputs = capture_outputs(trainer)
        rows = []
        results = {}
        for label, fn in (("reference-style", lambda: reference_test(trainer)),
                          ("ours, 1st pass", trainer.test),
                          ("ours, 2nd pass", trainer.test)):
            outputs.clear()
            seconds, accuracy, text = timed(fn)
            results[label] = torch.cat(outputs)
            rows.append((label, seconds, accuracy, cache_lines(text)))

        other_cfg = make_cfg(args.data_dir, weights, cache_dir, seed=2, workers=args.workers)
        other, _ = quietly(lambda: build_trainer(other_cfg))
        # The same learned context (as --eval-only of the same run would load), so outputs compare.
        other.model.prompt_learner.load_state_dict(trainer.model.prompt_learner.state_dict())
        other_outputs = capture_outputs(other)
        clip_module._DIGESTS.clear()  # as in a new process: the weights file is hashed again
        seconds, accuracy, text = timed(other.test)
        results["ours, new trainer"] = torch.cat(other_outputs)
        rows.append(("ours, new trainer", seconds, accuracy, cache_lines(text)))

    first = rows[1][1]
    reference = results["reference-style"]
    print(f"{'pass':<18} {'seconds':>8} {'vs reference':>12} {'of 1st pass':>11} {'accuracy':>8} "
          f"{'max |logit diff|':>16}")
    for label, seconds, accuracy, _ in rows:
        diff = (results[label] - reference).abs().max().item()
        print(f"{label:<18} {seconds:8.2f} {rows[0][1] / seconds:11.2f}x {100 * seconds / first:10.2f}% "
              f"{accuracy:7.1f}% {diff:16.2e}")
    for label, _, _, lines in rows:
        for line in lines:
            print(f"  [{label}] {line}")
    share = 100 * rows[2][1] / first
    print(f"2nd pass / 1st pass = {share:.2f}% (target < 5%: {'ok' if share < 5 else 'MISSED'})")


if __name__ == "__main__":
    main()
