"""Average the prompt checkpoints of several runs (MVLPT's source-prompt initialisation).

    python scripts/mvlpt/avg_ckpt.py OUT_DIR RUN_DIR [RUN_DIR ...] [--load-epoch N] [--name prompt_learner]

Each RUN_DIR is a run's output folder (e.g. .../seed1); its `<name>/model-best.pth.tar` is read
(`model.pth.tar-N` with --load-epoch). Every state_dict tensor (buffers included) is averaged
element-wise, as are the epochs (integer mean) and val results; the result is written to
OUT_DIR/<name>/ as model.pth.tar-<epoch> and model-best.pth.tar, so that target runs load it with
`--model-dir OUT_DIR`.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from dassl.utils import load_checkpoint, save_checkpoint  # noqa: E402


def checkpoint_path(run_dir: str, name: str, epoch: int | None) -> str:
    file_name = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
    return os.path.join(run_dir, name, file_name)


def average_checkpoints(paths: list[str]) -> dict:
    """The element-wise mean of the checkpoints' state dicts, their mean epoch and val result."""
    checkpoints = [load_checkpoint(path) for path in paths]
    keys = list(checkpoints[0]["state_dict"])
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        if list(checkpoint["state_dict"]) != keys:
            raise ValueError(f"{path} holds other entries than {paths[0]} (same family, M and backbone needed)")
    state_dict = {}
    for key in keys:
        values = [checkpoint["state_dict"][key] for checkpoint in checkpoints]
        mean = torch.stack([v.float() for v in values]).mean(dim=0)
        state_dict[key] = mean.to(values[0].dtype)
    val_results = [c.get("val_result") for c in checkpoints if c.get("val_result") is not None]
    return {
        "state_dict": state_dict,
        "epoch": int(sum(c["epoch"] for c in checkpoints) / len(checkpoints)),
        "val_result": sum(val_results) / len(val_results) if val_results else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="folder to write <name>/model-best.pth.tar into")
    parser.add_argument("run_dirs", nargs="+", help="run output folders (one per seed)")
    parser.add_argument("--load-epoch", type=int, default=None, help="average model.pth.tar-N instead of the best")
    parser.add_argument("--name", default="prompt_learner", help="registered model name (sub-folder)")
    args = parser.parse_args(argv)

    paths = [checkpoint_path(d, args.name, args.load_epoch) for d in args.run_dirs]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        print(f"error: checkpoint not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    averaged = average_checkpoints(paths)
    print(f"Averaged {len(paths)} checkpoints (epoch {averaged['epoch']})")
    save_checkpoint(averaged, os.path.join(args.output_dir, args.name), is_best=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
