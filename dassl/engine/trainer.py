"""Trainers: Dassl's lifecycle, hooks, log line, evaluation and checkpoint layout.

TrainerBase owns the registered models/optimizers/schedulers and the epoch loop; SimpleTrainer
adds data, default model, evaluation and checkpointing; TrainerX/TrainerXU run one epoch over
labelled (and unlabelled) loaders. Consumers subclass TrainerX and override the hooks.
"""
from __future__ import annotations

import datetime
import os.path as osp
import time
import warnings
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn
from tqdm import tqdm
from yacs.config import CfgNode

from dassl.evaluation import build_evaluator
from dassl.modeling import build_backbone, build_head
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import (
    AverageMeter, MetricMeter, count_num_param, get_rng_states, load_checkpoint,
    load_latest_checkpoint, load_pretrained_weights, mkdir_if_missing, restore_training_state,
    save_checkpoint, set_rng_states, tolist_if_not,
)
from dassl.utils.distributed import (
    all_reduce_gradients, barrier, broadcast_modules, gather_objects, get_rank, get_world_size, init_distributed,
    is_distributed, is_main_process, local_device, main_process_first, reduce_weighted, sync_rng_states,
)
from dassl.utils.torchtools import POINTER_FILE


class SimpleNet(nn.Module):
    """backbone -> optional head -> linear classifier (when num_classes > 0)."""

    def __init__(self, cfg: CfgNode, model_cfg: CfgNode, num_classes: int, **kwargs: Any) -> None:
        super().__init__()
        self.backbone = build_backbone(
            model_cfg.BACKBONE.NAME, verbose=cfg.VERBOSE, pretrained=model_cfg.BACKBONE.PRETRAINED, **kwargs
        )
        fdim = self.backbone.out_features

        self.head = None
        if model_cfg.HEAD.NAME and model_cfg.HEAD.HIDDEN_LAYERS:
            self.head = build_head(
                model_cfg.HEAD.NAME,
                verbose=cfg.VERBOSE,
                in_features=fdim,
                hidden_layers=model_cfg.HEAD.HIDDEN_LAYERS,
                activation=model_cfg.HEAD.ACTIVATION,
                bn=model_cfg.HEAD.BN,
                dropout=model_cfg.HEAD.DROPOUT,
            )
            fdim = self.head.out_features

        self.classifier = nn.Linear(fdim, num_classes) if num_classes > 0 else None
        self._fdim = fdim

    @property
    def fdim(self) -> int:
        return self._fdim

    def forward(self, x: torch.Tensor, return_feature: bool = False) -> Any:
        f = self.backbone(x)
        if self.head is not None:
            f = self.head(f)
        if self.classifier is None:
            return f
        y = self.classifier(f)
        return (y, f) if return_feature else y


class TrainerBase:
    """Registered models with their optimizers/schedulers, the epoch loop and its hooks."""

    def __init__(self) -> None:
        self._models: OrderedDict[str, nn.Module] = OrderedDict()
        self._optims: OrderedDict[str, Any] = OrderedDict()
        self._scheds: OrderedDict[str, Any] = OrderedDict()
        self._writer: Any = None
        # This process's share of the current global batch (torchrun; see run_epoch).
        self._batch_share = 1.0 / get_world_size()

    def register_model(self, name: str = "model", model: nn.Module | None = None, optim: Any = None,
                       sched: Any = None) -> None:
        """Register a model (and its optimizer/scheduler, which several names may share)."""
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        assert name not in self._models, "Found duplicate model names"
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names: str | list[str] | None = None) -> list[str]:
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        names = tolist_if_not(names)
        for name in names:
            assert name in names_real
        return names

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: float | None = None,
                   model_name: str = "") -> None:
        """One checkpoint per registered name under directory/<name>/ (epoch stored 1-based).

        Under torchrun every process calls it (their generator states are gathered); rank 0 writes.
        """
        # Beyond Dassl's five keys: what an exact resume needs (consumers ignore extra keys).
        rng_states = get_rng_states()
        per_rank_states = gather_objects(rng_states) if is_distributed() else None
        if is_main_process():
            self._write_checkpoints(epoch, directory, is_best, val_result, model_name, rng_states, per_rank_states)
        barrier()  # the files exist for every process once it returns (best_val reloads them)

    def _write_checkpoints(self, epoch: int, directory: str, is_best: bool, val_result: float | None,
                           model_name: str, rng_states: dict, per_rank_states: list | None) -> None:
        # TrainerBase itself has no best_result; SimpleTrainer (and SoftCPT's trainers) set it.
        best_result = getattr(self, "best_result", None)
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            save_checkpoint(
                {
                    "state_dict": self._models[name].state_dict(),
                    "epoch": epoch + 1,
                    "optimizer": optim.state_dict() if optim is not None else None,
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "val_result": None if val_result is None else float(val_result),
                    "rng_states": rng_states,
                    "best_result": None if best_result is None else float(best_result),
                    **({"rng_states_per_rank": per_rank_states} if per_rank_states else {}),
                },
                osp.join(directory, name),
                is_best=is_best,
                model_name=model_name,
            )

    def resume_model_if_exist(self, directory: str) -> int:
        """Restore every registered name (and the RNG states) from directory; return the epoch."""
        names = self.get_model_names()
        # The pointer is written last, so its presence means a complete checkpoint exists.
        # (No registered model, e.g. zero-shot CLIP, means nothing to resume.)
        if not names or not all(osp.isfile(osp.join(directory, name, POINTER_FILE)) for name in names):
            print("No checkpoint found, train from scratch")
            return 0

        print(f"Found checkpoint at {directory} (will resume training)")
        checkpoint: dict = {}
        for name in names:
            checkpoint = load_latest_checkpoint(osp.join(directory, name))
            restore_training_state(checkpoint, self._models[name], self._optims[name], self._scheds[name])
        per_rank_states = checkpoint.get("rng_states_per_rank")
        if per_rank_states and len(per_rank_states) == get_world_size():
            set_rng_states(per_rank_states[get_rank()])
            print("Restored random number generator states")
        elif checkpoint.get("rng_states") is not None:
            set_rng_states(checkpoint["rng_states"])
            print("Restored random number generator states")
        if checkpoint.get("best_result") is not None:
            self.best_result = checkpoint["best_result"]
        return checkpoint["epoch"]

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        """Load model-best.pth.tar (or model.pth.tar-<epoch>) of every registered name."""
        if not directory:
            print(
                "Note that load_model() is skipped as no pretrained model is given "
                "(ignore this if it's done on purpose)"
            )
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise FileNotFoundError(f"No model at {model_path}")
            checkpoint = load_checkpoint(model_path)
            val_result = checkpoint["val_result"]
            shown = "None" if val_result is None else f"{val_result:.1f}"
            print(f"Load {model_path} to {name} (epoch={checkpoint['epoch']}, val_result={shown})")
            self._models[name].load_state_dict(checkpoint["state_dict"])

    def set_model_mode(self, mode: str = "train", names: str | list[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ("test", "eval"):
                self._models[name].eval()
            else:
                raise KeyError(mode)

    def update_lr(self, names: str | list[str] | None = None) -> None:
        """Step the scheduler of each name (a shared scheduler is stepped once per name)."""
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def init_writer(self, log_dir: str) -> None:
        if self.__dict__.get("_writer") is not None or not is_main_process():
            return
        try:
            # Imported here: tensorboard is slow to import and optional.
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed: no tensorboard logs are written")
            return
        print(f"Initialize tensorboard (log_dir={log_dir})")
        self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def write_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch: int, max_epoch: int) -> None:
        """before_train, then [before_epoch, run_epoch, after_epoch] per epoch, then after_train."""
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        # range() is evaluated after before_train, which may move start_epoch (resume).
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def run_epoch(self) -> None:
        raise NotImplementedError

    def test(self, split: str | None = None) -> Any:
        raise NotImplementedError

    def parse_batch_train(self, batch: Any) -> Any:
        raise NotImplementedError

    def parse_batch_test(self, batch: Any) -> Any:
        raise NotImplementedError

    def forward_backward(self, batch: Any) -> Any:
        raise NotImplementedError

    def model_inference(self, input: Any) -> Any:
        raise NotImplementedError

    def model_zero_grad(self, names: str | list[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names: str | list[str] | None = None) -> None:
        self.sync_gradients(names)
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def sync_gradients(self, names: str | list[str] | None = None) -> None:
        """Under torchrun: make the gradients of the learnable parameters those of the global batch.

        Learnable = what the names' optimizers update (the model's requires_grad parameters when
        a name has none); each process's gradient is weighted by its share of the batch and
        summed. Called before every optimizer step (model_update, or before a GradScaler step).
        """
        if not is_distributed():
            return
        params: dict[int, nn.Parameter] = {}
        for name in self.get_model_names(names):
            optim = self._optims[name]
            if optim is not None:
                candidates = [p for group in optim.param_groups for p in group["params"]]
            else:
                candidates = list(self._models[name].parameters())
            params.update((id(p), p) for p in candidates if p.requires_grad)
        all_reduce_gradients(list(params.values()), self._batch_share)

    def model_backward_and_update(self, loss: torch.Tensor, names: str | list[str] | None = None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(TrainerBase):
    """Data, default model, evaluator, per-epoch checkpoints and the final test."""

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__()
        self.check_cfg(cfg)

        init_distributed(cfg.USE_CUDA)  # under torchrun (no-op otherwise)
        self.device = local_device(cfg.USE_CUDA)
        self._batch_share = 1.0 / get_world_size()

        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR

        self.cfg = cfg
        # Nothing may draw random numbers between set_random_seed and these two calls: few-shot
        # sampling and parameter initialisation must see the seeded generators. Under torchrun,
        # rank 0 builds first (it writes the shared files: few-shot splits, downloads) and its
        # generator states and registered models are given to the others.
        sync_rng_states()
        with main_process_first():
            self.build_data_loader()
        sync_rng_states()
        with main_process_first():
            self.build_model()
        broadcast_modules([self._models[name] for name in self.get_model_names()])
        self.evaluator = self.build_evaluator()
        self.best_result = float("-inf")

    def check_cfg(self, cfg: CfgNode) -> None:
        """Hook to validate cfg before anything is built (self.cfg is not set yet)."""

    def build_evaluator(self):
        """TEST.EVALUATOR; multi-task datasets are always scored per task (ClassificationMT)."""
        cfg = self.cfg
        dataset = getattr(getattr(self, "dm", None), "dataset", None)
        if getattr(dataset, "taskid2cname", None) is None:
            return build_evaluator(cfg, lab2cname=self.lab2cname)
        from dassl.data.multitask import TaskLayout

        if cfg.TEST.EVALUATOR == "Classification":
            print("Multi-task dataset: evaluating per task with ClassificationMT")
            cfg = cfg.clone()
            cfg.defrost()
            cfg.TEST.EVALUATOR = "ClassificationMT"
        return build_evaluator(cfg, lab2cname=self.lab2cname,
                               task_layout=TaskLayout.from_dataset(dataset))

    def build_data_loader(self) -> None:
        """Build the DataManager and expose its loaders and label info as attributes."""
        # Imported here so that importing the engine does not pull in torchvision and PIL.
        from dassl.data import DataManager

        tfm_train, tfm_test = self.build_transforms()
        dm = DataManager(self.cfg, custom_tfm_train=tfm_train, custom_tfm_test=tfm_test,
                         dataset=self.build_dataset())
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_dataset(self) -> Any:
        """Hook: a built dataset for the DataManager; None builds DATASET.NAME (a trainer may adapt the
        dataset here: a multi-task concatenation, or SoftCPT's single-task dataset as a suite of one)."""
        return None

    def build_transforms(self) -> tuple[Any, Any]:
        """Hook: (train, test) transforms; None builds them from INPUT.*."""
        return None, None

    def build_model(self) -> None:
        """SimpleNet from MODEL.*, with its optimizer and scheduler, registered as "model"."""
        cfg = self.cfg
        print("Building model")
        self.model = SimpleNet(cfg, cfg.MODEL, self.num_classes)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        print(f"# params: {count_num_param(self.model):,}")
        self.optim = build_optimizer(self.model, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def train(self) -> None:  # type: ignore[override]
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self) -> None:
        directory = self.cfg.RESUME or self.cfg.OUTPUT_DIR
        self.start_epoch = self.resume_model_if_exist(directory)

        if is_main_process():
            writer_dir = osp.join(self.output_dir, "tensorboard")
            mkdir_if_missing(writer_dir)
            self.init_writer(writer_dir)

        self.time_start = time.time()

    def after_train(self) -> None:
        print("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()

        elapsed = round(time.time() - self.time_start)
        print(f"Elapsed: {datetime.timedelta(seconds=elapsed)}")
        self.close_writer()

    def after_epoch(self) -> None:
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_checkpoint_freq = freq > 0 and (self.epoch + 1) % freq == 0

        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            if curr_result > self.best_result:
                self.best_result = curr_result
                self.save_model(self.epoch, self.output_dir, val_result=curr_result, model_name="model-best.pth.tar")

        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)

    @torch.no_grad()
    def test(self, split: str | None = None) -> float:
        """Evaluate on the val (if it exists and is asked for) or test split; return accuracy."""
        self.set_model_mode("eval")
        self.evaluator.reset()

        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader

        print(f"Evaluate on the *{split}* set")
        for batch in tqdm(data_loader, disable=not is_main_process()):
            input, label = self.parse_batch_test(batch)
            output = self.model_inference(input)
            self.evaluator.process(output, label)

        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        return list(results.values())[0]

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)

    def parse_batch_test(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names: str | list[str] | None = None) -> float:
        """lr of the first param group of the first (given) name's optimizer."""
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]

    def _set_batch_share(self, loader: Any) -> None:
        """This process's share of global batch self.batch_idx of `loader` (weights gradients and logs)."""
        fraction = getattr(getattr(loader, "batch_sampler", None), "fraction", None)
        self._batch_share = fraction(self.batch_idx) if callable(fraction) else 1.0 / get_world_size()

    def _reduce_summary(self, loss_summary: Any) -> Any:
        """The logged values of the global batch: the processes' values weighted by their shares."""
        if not is_distributed() or not isinstance(loss_summary, dict):
            return loss_summary
        return reduce_weighted(loss_summary, self._batch_share)

    def _log_iteration(self, losses: MetricMeter, batch_time: AverageMeter, data_time: AverageMeter) -> None:
        """Dassl's training log line (every PRINT_FREQ batches) and per-iteration scalars."""
        meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
        only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
        if meet_freq or only_few_batches:
            nb_remain = self.num_batches - self.batch_idx - 1
            nb_remain += (self.max_epoch - self.epoch - 1) * self.num_batches
            eta = datetime.timedelta(seconds=int(batch_time.avg * nb_remain))
            print(" ".join([
                f"epoch [{self.epoch + 1}/{self.max_epoch}]",
                f"batch [{self.batch_idx + 1}/{self.num_batches}]",
                f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
                f"data {data_time.val:.3f} ({data_time.avg:.3f})",
                f"{losses}",
                f"lr {self.get_current_lr():.4e}",
                f"eta {eta}",
            ]))

        n_iter = self.epoch * self.num_batches + self.batch_idx
        for name, meter in losses.meters.items():
            self.write_scalar("train/" + name, meter.avg, n_iter)
        self.write_scalar("train/lr", self.get_current_lr(), n_iter)


class TrainerX(SimpleTrainer):
    """One epoch over the labelled loader train_loader_x."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)

        end = time.time()
        # Batches go to forward_backward untouched (some consumers' loaders yield tuples).
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            data_time.update(time.time() - end)
            self._set_batch_share(self.train_loader_x)
            loss_summary = self._reduce_summary(self.forward_backward(batch))
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._log_iteration(losses, batch_time, data_time)
            end = time.time()

    def parse_batch_train(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device), batch["domain"].to(self.device)


class TrainerXU(SimpleTrainer):
    """One epoch over labelled and unlabelled loaders together; the shorter one restarts."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()

        len_x = len(self.train_loader_x)
        len_u = len(self.train_loader_u)
        count_iter = self.cfg.TRAIN.COUNT_ITER
        if count_iter == "train_x":
            self.num_batches = len_x
        elif count_iter == "train_u":
            self.num_batches = len_u
        elif count_iter == "smaller_one":
            self.num_batches = min(len_x, len_u)
        else:
            raise ValueError(f"Unknown TRAIN.COUNT_ITER: {count_iter}")

        iter_x = iter(self.train_loader_x)
        iter_u = iter(self.train_loader_u)
        end = time.time()
        for self.batch_idx in range(self.num_batches):
            try:
                batch_x = next(iter_x)
            except StopIteration:
                iter_x = iter(self.train_loader_x)
                batch_x = next(iter_x)
            try:
                batch_u = next(iter_u)
            except StopIteration:
                iter_u = iter(self.train_loader_u)
                batch_u = next(iter_u)

            data_time.update(time.time() - end)
            self._set_batch_share(self.train_loader_x)
            loss_summary = self._reduce_summary(self.forward_backward(batch_x, batch_u))
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._log_iteration(losses, batch_time, data_time)
            end = time.time()

    def parse_batch_train(self, batch_x: dict, batch_u: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            batch_x["img"].to(self.device),
            batch_x["label"].to(self.device),
            batch_u["img"].to(self.device),
        )
