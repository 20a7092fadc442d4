"""Zero-shot CLIP: hand-written prompts, no training (ZeroshotCLIP, ZeroshotCLIP2)."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from clip import clip
from clip.encode import encode_text
from clip.model import CLIP
from clip.prompts import TextPrompt
from dassl.engine import TRAINER_REGISTRY, TrainerX
from datasets.templates import IMAGENET_TEMPLATES_SELECT, template_for
from descriptions import load_class_descriptions

from .common import build_clip, l2_normalize
from .image_cache import FrozenClipHeadMixin
from .prompting import clean_classname


def template_features(clip_model: CLIP, classnames: Sequence[str], template: str) -> Tensor:
    """(n_cls, D) normalised text features of `template` filled with each class name."""
    prompts = [template.format(clean_classname(name)) for name in classnames]
    tokens = clip.tokenize(prompts).to(clip_model.token_embedding.weight.device)
    return l2_normalize(clip_model.encode_text(tokens))


@torch.no_grad()
def class_text_features(clip_model: CLIP, classnames: Sequence[str], templates: Sequence[str]) -> Tensor:
    """(n_cls, D) normalised; several templates: the renormalised mean of their normalised features."""
    if len(templates) == 1:
        return template_features(clip_model, classnames, templates[0])
    stacked = torch.stack([template_features(clip_model, classnames, t) for t in templates])
    return l2_normalize(stacked.mean(dim=0))


class FloatTextTower(nn.Module):
    """fp32 copies of the parts of CLIP that `clip.encode.encode_text` reads (the text tower).

    The reference computes some frozen text features with a zero-shot CLIP converted to fp32
    (SAP's description and teacher features) whatever precision the trained model runs in.
    """

    def __init__(self, clip_model: CLIP):
        super().__init__()
        self.token_embedding = copy.deepcopy(clip_model.token_embedding).float()
        self.transformer = copy.deepcopy(clip_model.transformer).float()
        self.ln_final = copy.deepcopy(clip_model.ln_final).float()
        self.positional_embedding = nn.Parameter(clip_model.positional_embedding.detach().float().clone())
        self.text_projection = nn.Parameter(clip_model.text_projection.detach().float().clone())
        self.requires_grad_(False)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32


@torch.no_grad()
def float_text_features(clip_model: CLIP, texts: Sequence[str], device: torch.device,
                        chunk: int = 2048) -> Tensor:
    """(len(texts), D) un-normalised fp32 text features of frozen CLIP, computed on `device`
    (chunks of `chunk` texts, the fast text path) and returned on the CPU."""
    tower = FloatTextTower(clip_model).to(device)
    features = []
    for start in range(0, len(texts), chunk):
        tokens = clip.tokenize(list(texts[start:start + chunk])).to(device)
        eot = tokens.argmax(dim=-1)
        embeddings = tower.token_embedding(tokens[:, :int(eot.max()) + 1])
        features.append(encode_text(tower, TextPrompt(embeddings=embeddings, eot=eot)).cpu())
    return torch.cat(features)


def class_mean_weights(owners: Sequence[int], n_cls: int, dtype: torch.dtype) -> Tensor:
    """(C, P) M / rowsum(M), M[c, p] = 1 iff description p belongs to class c, computed in `dtype`
    (SAP divides in fp16). Description logits (B, P) @ its transpose = per class the mean of its
    descriptions' logits."""
    mask = torch.zeros(n_cls, len(owners), dtype=dtype)
    mask[torch.as_tensor(owners), torch.arange(len(owners))] = 1
    return mask / mask.sum(dim=1, keepdim=True)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(FrozenClipHeadMixin, TrainerX):
    """CLIP with the dataset's template (CUSTOM_TEMPLATES[DATASET.NAME]); use with --eval-only."""

    def templates(self) -> list[str]:
        return [template_for(self.cfg)]

    def task_templates(self, template: str) -> list[str]:
        """The templates of one task of a multi-task suite whose own template is `template`."""
        return [template]

    def build_model(self) -> None:
        dataset = self.dm.dataset
        # The reference keeps OpenAI's fp16 CLIP whatever TRAINER.*.PREC says (fp32 on CPU).
        clip_model, _ = build_clip(self.cfg, "fp16", self.device)
        clip_model.to(self.device)
        if getattr(dataset, "taskid2cname", None) is not None:
            # Multi-task suite (SoftCPT): each task's classes with that task's template(s), side
            # by side over the union of classes; the evaluator scores each task on its columns.
            tasks = list(zip(dataset.taskid2cname, dataset.taskid2template))
            for names, template in tasks:
                self._print_prompts(names, self.task_templates(template))
            self.text_features = torch.cat([class_text_features(clip_model, names, self.task_templates(template))
                                            for names, template in tasks])
        else:
            self._print_prompts(dataset.classnames, self.templates())
            self.text_features = class_text_features(clip_model, dataset.classnames, self.templates())
        self.clip_model = clip_model

    @staticmethod
    def _print_prompts(classnames: Sequence[str], templates: Sequence[str]) -> None:
        if len(templates) == 1:
            print(f"Prompts: {[templates[0].format(clean_classname(c)) for c in classnames]}")
        else:
            print(f"Prompt ensembling (n={len(templates)})")

    def forward_features(self, image_features: Tensor) -> Tensor:
        return self.clip_model.logit_scale.exp() * l2_normalize(image_features) @ self.text_features.t()

    def model_inference(self, image: Tensor) -> Tensor:
        return self.forward_features(self.encode_image(image))


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling: the 7 selected ImageNet templates, plus the dataset's unless ImageNet."""

    def templates(self) -> list[str]:
        templates = list(IMAGENET_TEMPLATES_SELECT)  # a copy: the module list is never mutated
        if self.cfg.DATASET.NAME != "ImageNet":
            templates.append(template_for(self.cfg))
        return templates

    def task_templates(self, template: str) -> list[str]:
        return [*IMAGENET_TEMPLATES_SELECT, template]


@TRAINER_REGISTRY.register()
class ZeroshotCLIPDescriptions(ZeroshotCLIP):
    """Classification by description: a class scores the mean over its descriptions of
    100 cos(image, description sentence), with SAP's description files (DESCRIPTIONS.*) and
    sentences ("a photo of a <class>, which ..."); use with --eval-only. Frozen CLIP as
    ZeroshotCLIP (fp16 on CUDA); the sentence features are computed once, in fp32 as SAP's."""

    def build_model(self) -> None:
        classnames = self.dm.dataset.classnames
        clip_model, _ = build_clip(self.cfg, "fp16", self.device)
        clip_model.to(self.device)
        descriptions = load_class_descriptions(self.cfg, classnames)
        sentences = descriptions.sentences()
        print(f"Descriptions: {len(sentences)} for {len(classnames)} classes from {descriptions.path}")
        features = float_text_features(clip_model, sentences, self.device)
        self.text_features = l2_normalize(features).to(self.device, clip_model.dtype)
        self.class_weights = class_mean_weights(descriptions.owners, len(classnames), clip_model.dtype).to(self.device)
        self.clip_model = clip_model

    def forward_features(self, image_features: Tensor) -> Tensor:
        """ZeroshotCLIP's logits over the description sentences (B, P), averaged per class (B, C)."""
        return super().forward_features(image_features) @ self.class_weights.t()
