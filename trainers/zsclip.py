"""Zero-shot CLIP: hand-written prompts, no training (ZeroshotCLIP, ZeroshotCLIP2)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from clip import clip
from clip.model import CLIP
from dassl.engine import TRAINER_REGISTRY, TrainerX
from datasets.templates import IMAGENET_TEMPLATES_SELECT, template_for

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
