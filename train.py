"""Train or evaluate a trainer (CoOp's train.py command line).

Config order: Dassl defaults -> extend_cfg (project hooks) -> dataset YAML -> method YAML ->
command-line flags -> trailing KEY VALUE options.

extend_cfg imports the project's `trainers` and `datasets` packages (importing them registers
their names) and then calls, once each, `<package>.extend_cfg(cfg)` where a package defines it and
`extend_cfg(cfg)` of every registered trainer and dataset class that has one, so every key exists
before files are merged.

Mistakes a user makes (unknown config key, missing file or folder, unknown trainer or dataset
name, unreadable legacy checkpoint) end with one `error: ...` line on stderr and exit code 2;
set DASSL_DEBUG=1 to get the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType
from typing import Callable

import torch
import yaml
from yacs.config import CfgNode

from dassl.cli import DEBUG_ENV, UserError, import_project_module, one_line_errors  # noqa: F401
from dassl.config import get_cfg_default
from dassl.data.datasets import DATASET_REGISTRY
from dassl.engine import TRAINER_REGISTRY, build_trainer
from dassl.utils import (
    LegacyCheckpointError, UnavailableError, collect_env_info, set_random_seed, setup_logger,
)
from dassl.utils.distributed import init_distributed, is_main_process, shutdown_distributed

PROJECT_PACKAGES = ("trainers", "datasets", "descriptions")


def print_args(args: argparse.Namespace, cfg: CfgNode) -> None:
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(vars(args)):
        print(f"{key}: {getattr(args, key)}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def reset_cfg(cfg: CfgNode, args: argparse.Namespace) -> None:
    """Copy the command-line flags that are set (truthy: --seed 0 is ignored, as upstream)."""
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head
    if getattr(args, "old_data_path", ""):  # SoftCPT: image paths recorded under another root
        cfg.DATALOADER.OLD_DATA_PATH = args.old_data_path
    if getattr(args, "new_data_path", ""):
        cfg.DATALOADER.NEW_DATA_PATH = args.new_data_path
    reset_multitask_cfg(cfg, args)


def reset_lamm_cfg(cfg: CfgNode, args: argparse.Namespace) -> None:
    """The LAMM repository's flags (--triplet-loss, --origin-clip, --random-init, --shots) as
    TRAINER.LAMM.* keys (trainers/label_alignment.py); trailing options still override them."""
    from trainers.label_alignment import LabelAlignmentMixin, cli_flags_to_cfg

    flags = [getattr(args, name, False) for name in ("triplet_loss", "origin_clip", "random_init")]
    if any(flags) and cfg.TRAINER.NAME in TRAINER_REGISTRY.registered_names() and not issubclass(
            TRAINER_REGISTRY.get(cfg.TRAINER.NAME), LabelAlignmentMixin):
        raise UserError(f"--triplet-loss, --origin-clip and --random-init (LAMM) work with --trainer CoOp or "
                        f"MaPLe, not {cfg.TRAINER.NAME}")
    cli_flags_to_cfg(cfg, *flags, getattr(args, "shots", None))


def shots_flag_sets_num_shots(trainer_name: str) -> bool:
    """MVLPT's --shots is the shot count; LAMM's (CoOp, MaPLe) only its loss weight (the trainer's
    class attribute `shots_flag_sets_num_shots` says which)."""
    if trainer_name not in TRAINER_REGISTRY.registered_names():
        return True
    return getattr(TRAINER_REGISTRY.get(trainer_name), "shots_flag_sets_num_shots", True)


def reset_multitask_cfg(cfg: CfgNode, args: argparse.Namespace) -> None:
    """MVLPT's flags (the reference's spellings) as aliases of their config keys."""
    if args.seed:
        cfg.DATASET.RANDOM_SEED_SAMPLING = args.seed
    if args.dataset:
        cfg.DATASET.DATASET = args.dataset
        if "," not in args.dataset and not args.multi_task:
            cfg.DATASET.NAME = args.dataset
    if args.shots and shots_flag_sets_num_shots(cfg.TRAINER.NAME):
        cfg.DATASET.NUM_SHOTS = args.shots
        cfg.DATASET.NUM_SAMPLES_PER_CLASS = args.shots
    if args.dataset_coop:
        cfg.DATASET.COOP = True
    if args.multi_task:
        cfg.DATASET.MULTITASK = True
    if args.multi_task_label_pertask:
        cfg.DATASET.MULTITASK_LABEL_PERTASK = True
    if args.multi_task_evalkey:
        cfg.DATASET.MULTITASK_EVALKEY = args.multi_task_evalkey
    if args.cut_contextlen:
        cfg.TRAINER.CUT_CONTEXTLEN = True
    if args.act_ckpt:
        cfg.TRAINER.ACT_CKPT = args.act_ckpt


def import_project_packages() -> list[ModuleType]:
    """Import `trainers` and `datasets` (the project's, wherever train.py runs from); their import
    registers the trainer and dataset names."""
    return [import_project_module(name) for name in PROJECT_PACKAGES]


def extend_cfg(cfg: CfgNode) -> None:
    """Add every project config key (TRAINER.<NAME>.*, DATASET.*) with its default."""
    owners: list[object] = list(import_project_packages())
    for registry in (TRAINER_REGISTRY, DATASET_REGISTRY):
        owners += [registry.get(name) for name in registry.registered_names()]
    called: list[Callable[[CfgNode], None]] = []
    for owner in owners:
        hook = getattr(owner, "extend_cfg", None)
        # An inherited or re-exported hook is the same function: call it once.
        if callable(hook) and not any(hook is done for done in called):
            hook(cfg)
            called.append(hook)


def merge_config_file(cfg: CfgNode, path: str) -> None:
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    try:
        cfg.merge_from_file(path)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    cfg = get_cfg_default()
    extend_cfg(cfg)
    try:
        if args.dataset_config_file:
            merge_config_file(cfg, args.dataset_config_file)
        if args.config_file:
            merge_config_file(cfg, args.config_file)
        reset_cfg(cfg, args)
        reset_lamm_cfg(cfg, args)
        cfg.merge_from_list(args.opts)
    except KeyError as e:  # unknown key; the message names the closest known one
        raise UserError(e.args[0]) from None
    except ValueError as e:  # type mismatch, odd number of options
        raise UserError(str(e)) from None
    cfg.freeze()
    return cfg


def quiet_secondary_process() -> None:
    """Under torchrun, processes other than rank 0 print nothing (rank 0 writes log.txt)."""
    sys.stdout = open(os.devnull, "w")
    os.environ["TQDM_DISABLE"] = "1"


def main(args: argparse.Namespace) -> None:
    cfg = setup_cfg(args)
    init_distributed(cfg.USE_CUDA)  # torchrun's environment switches data parallelism on
    if not is_main_process():
        quiet_secondary_process()
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if is_main_process():
        setup_logger(cfg.OUTPUT_DIR)

    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    if is_main_process():
        print("Collecting env info ...")
        print(f"** System info **\n{collect_env_info()}\n")

    trainer = build_trainer(cfg)

    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return

    if args.model_dir:  # MVLPT: a source prompt initialises the target run
        trainer.load_model(args.model_dir, epoch=args.load_epoch)

    if not args.no_train:
        trainer.train()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument(
        "--resume", type=str, default="", help="checkpoint directory (from which the training resumes)"
    )
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument(
        "--dataset-config-file", type=str, default="", help="path to config file for dataset setup"
    )
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory (eval-only, or before training)")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("--old-data-path", type=str, default="",
                        help="multi-task datasets: image paths starting with this are read from --new-data-path")
    parser.add_argument("--new-data-path", type=str, default="", help="see --old-data-path")
    parser.add_argument("--triplet-loss", action="store_true",
                        help="LAMM: label embeddings with the hierarchical loss (TRAINER.LAMM.ENABLED/LOSS)")
    parser.add_argument("--origin-clip", action="store_true",
                        help="LAMM alone: label embeddings, context frozen (TRAINER.LAMM.ENABLED/FREEZE_CTX)")
    parser.add_argument("--random-init", action="store_true",
                        help="LAMM: random label embeddings (TRAINER.LAMM.ENABLED/RANDOM_INIT)")
    parser.add_argument("--shots", type=int, default=None,
                        help="shots per class (DATASET.NUM_SHOTS and NUM_SAMPLES_PER_CLASS, as MVLPT); with CoOp "
                             "and MaPLe only LAMM's parameter-space weight 1/SHOTS (TRAINER.LAMM.SHOTS, default 1)")
    # MVLPT (multitask): aliases of DATASET.* / TRAINER.* keys, spelled as the reference.
    parser.add_argument("--dataset", type=str, default="", help="task name(s), comma-separated (DATASET.DATASET)")
    parser.add_argument("--dataset-coop", action="store_true", help="tasks are registered Dassl datasets (DATASET.COOP)")
    parser.add_argument("--multi-task", action="store_true", help="train on the union of the tasks (DATASET.MULTITASK)")
    parser.add_argument("--multi-task-label-pertask", "--multi-task-label_pertask", dest="multi_task_label_pertask",
                        action="store_true", help="zero other tasks' logits in the loss (DATASET.MULTITASK_LABEL_PERTASK)")
    parser.add_argument("--multi-task-evalkey", type=str, default="",
                        help="model selection on 'average' or one task (DATASET.MULTITASK_EVALKEY)")
    parser.add_argument("--cut-contextlen", action="store_true", help="TRAINER.CUT_CONTEXTLEN")
    parser.add_argument("--act-ckpt", type=int, default=0, help="TRAINER.ACT_CKPT")
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="modify config options using the command-line"
    )
    return parser


# What a user can cause and fix (besides dassl.cli.USER_ERRORS); anything else is a bug and keeps
# its traceback.
USER_ERRORS = (UnavailableError, LegacyCheckpointError)


@one_line_errors(extra=USER_ERRORS)
def cli(argv: list[str] | None = None) -> int:
    """Parse argv, run main; report user errors as one line (exit code 2)."""
    main(build_parser().parse_args(argv))
    shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
