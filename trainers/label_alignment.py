"""LAMM (Gao et al., AAAI 2024): learned label embeddings and their hierarchical loss.

One learned embedding M_c (m tokens) per class takes the place of prompt tokens right after the
context (`ClassPrompts.set_labels`); the prompt with the class names stays as the "fixed" branch.
Training loss (TRAINER.LAMM.LOSS, the reference's --triplet-loss):

    L = CE(z, y) + w_param * sum((M - M_0)^2) + w_feat * L_feat + w_logit * T^2 * CE_soft(z_fix / T, softmax(z / T))

z / z_fix: logits of the label / name prompts with the same image features; L_feat: mean over the
samples whose batch holds another class of 1 - cos(t_y, stopgrad(t_fix_y)). Defaults are the
reference's numerics: w_param = 1/SHOTS with SHOTS from --shots (1 in the shipped few-shot
scripts), the soft-target term back-propagating into both sides, and the label slot right after
the context (for MaPLe with N_CTX 2 and "a photo of a": the word "of").

`LabelAlignmentMixin` adds this to a PromptTrainer whose learner is a ClassPrompts (CoOp, MaPLe):
label embeddings when TRAINER.LAMM.ENABLED, the loss, the frozen context of "LAMM alone"
(FREEZE_CTX, --origin-clip; CoOp only, as the reference), and the reference's checkpoint handling.
Both branches go through the text encoder in one call (they share SOS + context); when nothing
but the labels trains, the name prompts' features are constant and computed once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip import clip
from clip.encode import encode_text
from clip.model import CLIP
from dassl.cli import ConfigError
from dassl.metrics import compute_accuracy

from .base import PromptCLIP, tensor_state_key
from .common import l2_normalize
from .prompting import ClassPrompts, clean_classname, embed_tokens

LABEL_KEYS = ("token_classes", "fix_token")
# The reference's saved copy of the plain suffix; ours is token_suffix (rebuilt from the class names).
REFERENCE_SUFFIX_KEY = "token_suffix_test"


def extend_cfg(cfg: CfgNode) -> None:
    """TRAINER.LAMM.* (once; called by every trainer that composes with LAMM)."""
    if "LAMM" in cfg.TRAINER:
        return
    lamm = cfg.TRAINER.LAMM = CN()
    lamm.ENABLED = False  # learn label embeddings (--triplet-loss, --origin-clip or --random-init)
    lamm.LOSS = False  # hierarchical loss on top of CE (--triplet-loss); False: CE-only label tuning
    lamm.FREEZE_CTX = False  # LAMM alone: context frozen at its initialisation (--origin-clip; CoOp only)
    lamm.RANDOM_INIT = False  # labels ~ N(0, 0.02^2) instead of the class names' tokens (--random-init)
    lamm.SHOTS = 1  # the reference's --shots: the parameter-space weight is 1/SHOTS
    lamm.PARAM_WEIGHT_FROM_NUM_SHOTS = False  # corrected: 1/DATASET.NUM_SHOTS instead of 1/SHOTS
    lamm.PARAM_WEIGHT = -1.0  # explicit parameter-space weight; < 0: 1/SHOTS (or 1/NUM_SHOTS, above)
    lamm.FEAT_WEIGHT = 1.0  # feature-space (cosine) weight
    lamm.LOGIT_WEIGHT = 0.05  # logit-space (soft-target) weight
    lamm.TEMPERATURE = 2.0  # temperature of the logit-space term
    lamm.N_TOKENS = 0  # tokens per label; 0: CoOp the shortest class name's BPE length, MaPLe 1
    lamm.LABEL_AT_NAME = False  # corrected MaPLe slot: the label replaces the first name token(s)
    lamm.MAPLE_RESTORE_LABELS = False  # corrected: MaPLe --eval-only loads the learned labels


def cli_flags_to_cfg(cfg: CfgNode, triplet_loss: bool, origin_clip: bool, random_init: bool,
                     shots: Optional[int]) -> None:
    """The reference's train.py flags as TRAINER.LAMM keys (the reference's CoOp/MaPLe always learn
    labels; here a flag switches them on, so plain --trainer CoOp / MaPLe are unchanged)."""
    lamm = cfg.TRAINER.LAMM
    if triplet_loss or origin_clip or random_init:
        lamm.ENABLED = True
    if triplet_loss:
        lamm.LOSS = True
    if origin_clip:
        lamm.FREEZE_CTX = True
    if random_init:
        lamm.RANDOM_INIT = True
    if shots is not None:
        lamm.SHOTS = shots


# --- label embeddings ------------------------------------------------------------------------

def label_init(clip_model: CLIP, classnames: Sequence[str], n_tokens: int) -> Tensor:
    """(n_cls, n_tokens, w): the embeddings of the first n_tokens BPE tokens of each class name,
    tokenized alone ([SOS, name..., EOT]); a name shorter than that is padded with its EOT/padding
    embeddings (never the case with the shortest name's length, the reference's choice)."""
    tokens = clip.tokenize([clean_classname(name) for name in classnames])
    return embed_tokens(clip_model, tokens)[:, 1:1 + n_tokens].clone()


def random_labels(n_cls: int, n_tokens: int, width: int, dtype: torch.dtype) -> Tensor:
    labels = torch.empty(n_cls, n_tokens, width, dtype=dtype)
    nn.init.normal_(labels, std=0.02)
    return labels


def first_name_offset(learner: ClassPrompts) -> int:
    """Suffix position of the first class-name token: the prefix tokens beyond the n context tokens."""
    return len(clip._tokenizer().encode(learner.prefix)) - learner.n_ctx


def attach_labels(learner: ClassPrompts, clip_model: CLIP, cfg: CfgNode,
                  default_tokens: Optional[int] = None) -> None:
    """Give `learner` label embeddings as TRAINER.LAMM says (m: N_TOKENS, else default_tokens,
    else the shortest name's token count; slot: right after the context, or at the name)."""
    lamm = cfg.TRAINER.LAMM
    n_tokens = lamm.N_TOKENS or default_tokens or min(learner.name_lens)
    if lamm.RANDOM_INIT:
        labels = random_labels(learner.n_cls, n_tokens, learner.token_prefix.shape[-1], learner.token_prefix.dtype)
    else:
        labels = label_init(clip_model, learner.classnames, n_tokens)
    offset = first_name_offset(learner) if lamm.LABEL_AT_NAME else 0
    learner.set_labels(labels, offset)
    print(f"LAMM: {n_tokens} label token(s) per class at prompt position {1 + learner.n_ctx + offset}"
          f"{' (random init)' if lamm.RANDOM_INIT else ''}")


def merge_label_embeddings(parts: Sequence[tuple[Sequence[int], Tensor]], n_cls: int) -> Tensor:
    """One (n_cls, m, w) tensor from (class ids, their embeddings (len(ids), m, w)) pieces, each
    piece's rows placed at its class ids (the original label order); every id exactly once."""
    first = parts[0][1]
    merged = first.new_empty((n_cls, *first.shape[1:]))
    seen = torch.zeros(n_cls, dtype=torch.bool)
    for ids, values in parts:
        index = torch.as_tensor(list(ids), dtype=torch.long)
        if values.shape[0] != index.numel() or values.shape[1:] != first.shape[1:]:
            raise ValueError(f"label embeddings {tuple(values.shape)} do not match {index.numel()} class ids "
                             f"of label shape {tuple(first.shape[1:])}")
        if seen[index].any():
            raise ValueError(f"class ids {index[seen[index]].tolist()} are given twice")
        seen[index] = True
        merged[index] = values
    if not seen.all():
        raise ValueError(f"no label embedding for class ids {(~seen).nonzero().flatten().tolist()}")
    return merged


# --- the hierarchical loss -----------------------------------------------------------------------

def parameter_loss(labels: Tensor, anchor: Tensor) -> Tensor:
    """Sum (not mean) of (M - M_0)^2 over every class, token and dimension; M_0 detached."""
    return ((labels - anchor.detach()) ** 2).sum()


def feature_loss(text: Tensor, text_fixed: Tensor, label: Tensor) -> Tensor:
    """Mean of 1 - cos(text[y_i], stopgrad(text_fixed[y_i])) over the samples i whose batch holds a
    sample of another class; 0 when there is none (batch of 1, single-class batch)."""
    has_other = (label[:, None] != label[None, :]).any(dim=1)
    if not has_other.any():
        return text.new_zeros(())
    y = label[has_other]
    return (1 - F.cosine_similarity(text[y], text_fixed[y].detach(), dim=-1)).mean()


def logit_loss(logits: Tensor, logits_fixed: Tensor, temperature: float) -> Tensor:
    """T^2 * mean_i -sum_c softmax(z / T)_ic log_softmax(z_fix / T)_ic; neither side detached (as
    the reference's soft-target cross-entropy, which back-propagates into the target too)."""
    target = F.softmax(logits / temperature, dim=-1)
    return temperature ** 2 * F.cross_entropy(logits_fixed / temperature, target)


@dataclass(frozen=True)
class LossWeights:
    param: float
    feat: float
    logit: float
    temperature: float

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> "LossWeights":
        lamm = cfg.TRAINER.LAMM
        if lamm.PARAM_WEIGHT >= 0:
            param = lamm.PARAM_WEIGHT
        else:
            key = "DATASET.NUM_SHOTS" if lamm.PARAM_WEIGHT_FROM_NUM_SHOTS else "TRAINER.LAMM.SHOTS (--shots)"
            shots = cfg.DATASET.NUM_SHOTS if lamm.PARAM_WEIGHT_FROM_NUM_SHOTS else lamm.SHOTS
            if shots < 1:
                raise ConfigError(f"the LAMM parameter-space weight is 1/shots: give {key} >= 1 "
                                  "(or TRAINER.LAMM.PARAM_WEIGHT)")
            param = 1.0 / shots
        return cls(param, lamm.FEAT_WEIGHT, lamm.LOGIT_WEIGHT, lamm.TEMPERATURE)


@dataclass
class BranchOutputs:
    """Both branches on one batch: normalised text features (n_cls, D) and logits (B, n_cls)."""

    text: Tensor
    text_fixed: Tensor
    logits: Tensor
    logits_fixed: Tensor


def hierarchical_loss(out: BranchOutputs, label: Tensor, labels: Tensor, anchor: Tensor,
                      weights: LossWeights) -> tuple[Tensor, dict[str, Tensor]]:
    """(total loss, its terms) of LAMM's loss."""
    terms = {
        "ce": F.cross_entropy(out.logits, label),
        "param": parameter_loss(labels, anchor),
        "feat": feature_loss(out.text, out.text_fixed, label),
        "logit": logit_loss(out.logits, out.logits_fixed, weights.temperature),
    }
    total = (terms["ce"] + weights.param * terms["param"] + weights.feat * terms["feat"]
             + weights.logit * terms["logit"])
    return total, terms


# --- the model side ------------------------------------------------------------------------------

def class_prompts(model: PromptCLIP) -> ClassPrompts:
    """The ClassPrompts of a PromptCLIP: its module (CoOp) or the module's prompt_learner (MaPLe)."""
    module = model.prompt_module()
    return module if isinstance(module, ClassPrompts) else module.prompt_learner


class FixedBranchCache:
    """The name prompts' features while nothing they depend on changes (LAMM alone: frozen
    context and CLIP); keyed by every learner tensor except the label embeddings."""

    def __init__(self) -> None:
        self._entry: Optional[tuple[tuple, Tensor]] = None

    def get(self, module: nn.Module, compute) -> Tensor:
        tensors = [t for name, t in [*module.named_parameters(), *module.named_buffers()]
                   if not name.endswith(LABEL_KEYS)]
        key = tensor_state_key(tensors)
        if self._entry is None or self._entry[0] != key:
            with torch.no_grad():
                self._entry = (key, compute())
        return self._entry[1]


def only_labels_train(module: nn.Module) -> bool:
    return all(name.endswith("token_classes") for name, p in module.named_parameters() if p.requires_grad)


def branch_outputs(model: PromptCLIP, image: Tensor, cache: FixedBranchCache) -> BranchOutputs:
    """Image features once; the label and name prompts in one text-encoder call, or the label
    prompts alone with the cached name features when only the labels train."""
    module, learner = model.prompt_module(), class_prompts(model)
    image_features = l2_normalize(model.encode_image(image))

    def encode(*branches: str) -> Tensor:
        with learner.using_branches(*branches):
            return l2_normalize(encode_text(model.clip, module.text_prompt()))

    if only_labels_train(module):
        text = encode("labels")
        text_fixed = cache.get(module, lambda: encode("names"))
    else:
        text, text_fixed = encode("labels", "names").chunk(2)
    scale = model.clip.logit_scale.exp()
    return BranchOutputs(text, text_fixed, scale * image_features @ text.t(), scale * image_features @ text_fixed.t())


# --- the trainer side ----------------------------------------------------------------------------

class LabelAlignmentMixin:
    """LAMM for a PromptTrainer whose learner is a ClassPrompts; put it before the trainer's base.

    Class settings (the reference's two code paths): `label_tokens` (None: the shortest class
    name's token count; MaPLe: 1), `freezes_ctx` (FREEZE_CTX applies), `restores_labels`
    (--eval-only loads the learned labels; MaPLe: only with MAPLE_RESTORE_LABELS), and
    `reports_accuracy` (the training log shows acc).
    """

    label_tokens: ClassVar[Optional[int]] = None
    freezes_ctx: ClassVar[bool] = True
    restores_labels: ClassVar[bool] = True
    reports_accuracy: ClassVar[bool] = True
    # train.py: the LAMM repository's --shots sets only the loss weight, not DATASET.NUM_SHOTS.
    shots_flag_sets_num_shots: ClassVar[bool] = False
    _trained_here = False

    @classmethod
    def with_labels(cls, cfg: CfgNode, model: PromptCLIP, clip_model: CLIP) -> PromptCLIP:
        """`model` with label embeddings when TRAINER.LAMM.ENABLED (called by build_custom_clip)."""
        if cfg.TRAINER.LAMM.ENABLED:
            attach_labels(class_prompts(model), clip_model, cfg, cls.label_tokens)
        return model

    @property
    def _model(self) -> PromptCLIP:
        model = self.model  # type: ignore[attr-defined]
        return getattr(model, "module", model)  # DataParallel: the loss runs on the wrapped model

    def freeze(self, model: nn.Module) -> list[str]:
        trainable = super().freeze(model)  # type: ignore[misc]
        lamm = self.cfg.TRAINER.LAMM  # type: ignore[attr-defined]
        if lamm.ENABLED and lamm.FREEZE_CTX and self.freezes_ctx:
            class_prompts(model).ctx.requires_grad_(False)
            trainable = [name for name, p in model.named_parameters() if p.requires_grad]
        return trainable

    def before_train(self) -> None:
        self._trained_here = True
        super().before_train()  # type: ignore[misc]

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg  # type: ignore[attr-defined]
        if not (cfg.TRAINER.LAMM.ENABLED and cfg.TRAINER.LAMM.LOSS):
            return super().compute_loss(image, label)  # type: ignore[misc]
        if not hasattr(self, "_fixed_cache"):
            self._fixed_cache = FixedBranchCache()
            self._loss_weights = LossWeights.from_cfg(cfg)
        learner = class_prompts(self._model)
        out = branch_outputs(self._model, image, self._fixed_cache)
        loss, _ = hierarchical_loss(out, label, learner.token_classes, learner.fix_token, self._loss_weights)
        summary = {"loss": loss.item()}
        if self.reports_accuracy:
            summary["acc"] = compute_accuracy(out.logits, label)[0].item()
        return loss, summary

    def keys_dropped_on_load(self) -> tuple[str, ...]:
        keys = tuple(super().keys_dropped_on_load())  # type: ignore[misc]
        if not self.cfg.TRAINER.LAMM.ENABLED:  # type: ignore[attr-defined]
            return keys  # plain CoOp / MaPLe: a LAMM checkpoint's extra entries are reported, not used
        learner = class_prompts(self._model)
        registered = self.registered_module(self._model)  # type: ignore[attr-defined]
        name = next(name for name, module in registered.named_modules() if module is learner)
        prefix = f"{name}." if name else ""  # the learner's keys: "token_classes" / "prompt_learner.token_classes"
        keys += (prefix + REFERENCE_SUFFIX_KEY,)
        if not learner.has_labels:
            keys += tuple(prefix + key for key in LABEL_KEYS)
        elif not (self.restores_labels or self.cfg.TRAINER.LAMM.MAPLE_RESTORE_LABELS):  # type: ignore[attr-defined]
            keys += (prefix + "token_classes",)  # the reference's MaPLe path: initial labels at test time
        return keys

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        learner = class_prompts(self._model)
        new_classes = self.cfg.DATASET.SUBSAMPLE_CLASSES == "new"  # type: ignore[attr-defined]
        if learner.has_labels and new_classes and not self._trained_here:
            print("LAMM: testing on the new classes with their names (no label embeddings), as the reference")
            learner.drop_labels()
        try:
            super().load_model(directory, epoch)  # type: ignore[misc]
        except RuntimeError as err:
            if not (learner.has_labels and "token_classes" in str(err)):
                raise
            # The reference fails here (e.g. ImageNet -> ImageNet-A/R): evaluate with the names instead.
            print(f"LAMM: the checkpoint's label embeddings are for other classes than the {learner.n_cls} "
                  "of this dataset: testing with the class names (no label embeddings)")
            learner.drop_labels()
            super().load_model(directory, epoch)  # type: ignore[misc]
