"""The prompt-learning trainer base: frozen CLIP, one trainable registered module.

A method subclass sets `config_node` (its TRAINER.<NODE>, holding PREC), implements
`build_custom_clip` and, when it differs from CE on the logits, `compute_loss`. Everything else —
precision, freezing, optimizer/scheduler, the update step, the per-epoch LR step, loading with
class-dependent buffers dropped — is here once.
"""
from __future__ import annotations

import itertools
import os.path as osp
from typing import Callable, ClassVar, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from clip.encode import encode_text
from clip.model import CLIP
from clip.prompts import VisionPrompt
from dassl.data.multitask import TaskLayout
from dassl.engine import TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_checkpoint, load_pretrained_weights

from .common import PRECISIONS, build_clip, freeze_except, l2_normalize
from .image_cache import ImageFeatureCacheMixin


def tensor_state_key(tensors: Iterable[Tensor]) -> tuple:
    """Identity, version counter, device and dtype of each tensor: changes with any in-place update,
    a loaded state dict or a `.to()`."""
    return tuple((id(t), t._version, t.device, t.dtype) for t in tensors)


class TextFeatureCache:
    """Class text features of image-independent prompts, reused during evaluation.

    Used only with gradients off and the learner in eval mode; the entry is keyed by the identity,
    version counter, device and dtype of every learner tensor, so an optimizer step, a loaded
    state dict or a `.to()` invalidates it. The cached value is the one recomputing would give.
    """

    def __init__(self) -> None:
        self._entry: Optional[tuple[tuple, Tensor]] = None

    def get(self, learner: nn.Module | Sequence[nn.Module], compute: Callable[[], Tensor]) -> Tensor:
        """learner: the module(s) whose tensors the text features depend on."""
        learners = [learner] if isinstance(learner, nn.Module) else list(learner)
        if any(m.training for m in learners) or torch.is_grad_enabled():
            self._entry = None
            return compute()
        key = tensor_state_key(itertools.chain.from_iterable(
            itertools.chain(m.parameters(), m.buffers()) for m in learners))
        entry = self._entry
        if entry is not None and entry[0] == key:
            return entry[1]
        value = compute()
        self._entry = (key, value)
        return value

    def clear(self) -> None:
        self._entry = None


class PromptCLIP(nn.Module):
    """Frozen CLIP (`clip`) classifying with the prompts of one learned module.

    logits = exp(logit_scale) * norm(image features) @ norm(class text features).T. The module
    provides `text_prompt() -> TextPrompt`; its text features do not depend on the image, so they
    are computed once per evaluation (TextFeatureCache). CoOp holds the module as `prompt_learner`
    and its image tower has no prompts, so test-time image features may be cached
    (trainers/image_cache.py). Subclasses with image prompts (trainers/deep_prompts.py) override
    `vision_prompt`.
    """

    prompt_attribute: ClassVar[str] = "prompt_learner"  # the learned module's attribute name

    def __init__(self, clip_model: CLIP, prompt_module: nn.Module):
        super().__init__()
        setattr(self, self.prompt_attribute, prompt_module)
        self.clip = clip_model
        self.text_cache = TextFeatureCache()

    @property
    def dtype(self) -> torch.dtype:
        return self.clip.dtype

    def prompt_module(self) -> nn.Module:
        return getattr(self, self.prompt_attribute)

    def vision_prompt(self) -> Optional[VisionPrompt]:
        """The image-tower prompts (None: plain image tower)."""
        return None

    @property
    def frozen_image_encoder(self) -> bool:
        """No prompt reaches the image tower (read by trainers/image_cache.py)."""
        return self.vision_prompt() is None

    def encode_image(self, image: Tensor) -> Tensor:
        """The (prompted) image tower's raw output (B, D)."""
        return self.clip.encode_image(image, self.vision_prompt())

    def text_features(self) -> Tensor:
        """(n_cls, D) normalised; computed once per evaluation (see TextFeatureCache)."""
        module = self.prompt_module()
        compute = lambda: l2_normalize(encode_text(self.clip, module.text_prompt()))  # noqa: E731
        return self.text_cache.get(module, compute)

    def forward_features(self, image_features: Tensor) -> Tensor:
        """Logits from `encode_image`'s output."""
        return self.clip.logit_scale.exp() * l2_normalize(image_features) @ self.text_features().t()

    def forward(self, image: Tensor) -> Tensor:
        return self.forward_features(self.encode_image(image))


def load_registered_state(module: nn.Module, path: str, drop_keys: Sequence[str], name: str,
                          learned_only: bool = False) -> None:
    """Load the checkpoint at `path` into `module` without `drop_keys`, strict=False.

    Dropping the class-dependent buffers keeps those built from the current class names, which is
    what base->new and cross-dataset evaluation rely on. learned_only: restore only the module's
    parameters whose shapes match (multi-task learners hold per-task buffers under many keys, and
    class-specific tensors cannot move to other classes); anything else is reported and skipped.
    """
    checkpoint = load_checkpoint(path)
    state_dict = checkpoint["state_dict"]
    for key in drop_keys:
        state_dict.pop(key, None)
    mismatched: list[str] = []
    if learned_only:
        params = dict(module.named_parameters())
        mismatched = [k for k, v in state_dict.items() if k in params and params[k].shape != v.shape]
        if mismatched:
            print(f"Note: {path}: shapes of {mismatched} do not fit these classes (kept as initialised)")
        drop_keys = [*drop_keys, *(k for k in module.state_dict() if k not in params)]
        state_dict = {k: v for k, v in state_dict.items() if k in params and k not in mismatched}
    print(f'Loading weights to {name} from "{path}" (epoch = {checkpoint["epoch"]})')
    missing, unexpected = module.load_state_dict(state_dict, strict=False)
    # strict=False is there for the dropped buffers; anything else is worth a line.
    missing = [k for k in missing if k not in drop_keys and k not in mismatched]
    if missing:
        print(f"Note: {path} has no value for {missing} (kept as initialised)")
    if unexpected:
        print(f"Note: ignored entries of {path} unknown to the model: {unexpected}")


class PromptTrainer(ImageFeatureCacheMixin, TrainerX):
    """TrainerX for a frozen CLIP with one trainable module (the prompt learner)."""

    config_node: ClassVar[str]  # TRAINER.<config_node>.PREC is read
    registered_name: ClassVar[str] = "prompt_learner"
    trainable_keys: ClassVar[tuple[str, ...]] = ("prompt_learner",)
    # Entries of the registered module's state dict derived from the class names.
    class_dependent_keys: ClassVar[tuple[str, ...]] = ("token_prefix", "token_suffix")
    # Restore only the learned parameters on load (see load_registered_state).
    restore_learned_only: ClassVar[bool] = False

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        """The full model around `clip_model` (already cast for the precision)."""
        raise NotImplementedError

    @classmethod
    def registered_module(cls, model: nn.Module) -> nn.Module:
        """The part of the model that is registered, optimised and saved."""
        return model.prompt_learner

    def check_cfg(self, cfg: CfgNode) -> None:
        prec = cfg.TRAINER[self.config_node].PREC
        assert prec in PRECISIONS, f"TRAINER.{self.config_node}.PREC must be one of {PRECISIONS}, got {prec!r}"

    @classmethod
    def requested_precision(cls, cfg: CfgNode) -> str:
        """The precision asked for: TRAINER.<config_node>.PREC (VPT overrides: always fp32)."""
        return cfg.TRAINER[cls.config_node].PREC

    def classnames(self) -> list[str]:
        """The class names the model scores: on a multi-task dataset, all tasks' in union order."""
        dataset = self.dm.dataset
        if getattr(dataset, "taskid2cname", None) is not None:
            return TaskLayout.from_dataset(dataset).classnames
        return dataset.classnames

    def build_model(self) -> None:
        cfg = self.cfg
        classnames = self.classnames()
        clip_model, self.precision = build_clip(cfg, self.requested_precision(cfg), self.device)

        print("Building custom CLIP")
        self.model = self.build_custom_clip(cfg, classnames, clip_model)

        print("Turning off gradients in both the image and the text encoder")
        trainable = self.freeze(self.model)
        print(f"Parameters to be updated: {trainable}")
        module = self.registered_module(self.model)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(module, cfg.MODEL.INIT_WEIGHTS)

        self.model.to(self.device)
        self.optim = build_optimizer(module, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model(self.registered_name, module, self.optim, self.sched)
        self.scaler = self.precision.grad_scaler()

    def freeze(self, model: nn.Module) -> list[str]:
        """Only the parameters named by `trainable_keys` train; returns their names."""
        return freeze_except(model, self.trainable_keys)

    def keys_dropped_on_load(self) -> tuple[str, ...]:
        """Entries of a checkpoint that `load_model` does not load (default: class_dependent_keys)."""
        return self.class_dependent_keys

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Training loss and the values logged for it (default: CE on the logits, and accuracy)."""
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        return loss, {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}

    def forward_backward(self, batch: dict) -> dict[str, float]:
        image, label = self.parse_batch_train(batch)
        with self.precision.autocast():
            loss, summary = self.compute_loss(image, label)
        self.backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def backward_and_update(self, loss: Tensor) -> None:
        if self.scaler is None:
            self.model_backward_and_update(loss)  # zero_grad, NaN/Inf check, backward, step
            return
        self.model_zero_grad()
        self.scaler.scale(loss).backward()
        self.sync_gradients()  # under torchrun; before the scaler's inf check, so all processes agree
        for name in self.get_model_names():
            self.scaler.step(self._optims[name])
        self.scaler.update()

    def parse_batch_train(self, batch: dict) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        # Without an epoch the best-val file is meant; last_step runs (the default) never write it.
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                hint = " (pass --load-epoch: last_step runs save model.pth.tar-<epoch> only)" if epoch is None else ""
                raise FileNotFoundError(f'Model not found at "{model_path}"{hint}')
            load_registered_state(self._models[name], model_path, self.keys_dropped_on_load(), name,
                                  learned_only=self.restore_learned_only)
