"""SAP (semantic alignment for prompt tuning): description-guided part-level alignment over IVLP.

Each class is represented by its LLM-written descriptions (descriptions/): every description in
SAP's sentence (descriptions.template) is a prompt of IVLP's prompted text tower, the first
N_CTX_TEXT word tokens replaced by the learned context. Image side, with the prompted image tower's
last-block tokens projected by the frozen ln_post and proj (patch tokens plus the learned `mybias`):

    r = softmax_p(g A^T)            relevance of each description to the image (B, P)
    S = softmax_n(A Lp^T)           each description's attention over the patches (B, P, N)
    F = S Lp                        description-guided local features (B, P, D)
    s = sum_p r max_n S             local weight (B,)
    z = (1 - s) g + s sum_p r F     fused image feature (B, D)
    logit[b, c] = mean over the descriptions p of class c of 100 cos(z_b, t_p)

with g the global (CLS) feature, A the frozen-CLIP features of the raw descriptions, Lp the patch
tokens and t the prompted description features; everything un-normalised up to the cosine. Loss:
CE + TEXT_LOSS_WEIGHT * L1(t̂, frozen t̂0) + IMAGE_LOSS_WEIGHT * L1(ĝ, frozen ĝ0).

Computed once: A and t0 (frozen CLIP in fp32, as the reference) per class set, the class mask;
during evaluation the prompted description features once per evaluation (TextFeatureCache), not per
test batch as the reference. Description prompts run through the shared-prefix text path.

Registered as `VLPromptLearner` with the reference's keys (IVLP's plus `mybias`); the reference's
whole-model checkpoints load (their frozen CLIP and `base_image_encoder` entries are skipped).
Precision: PREC fp16 (CUDA) has the reference's numerics; fp32 and amp, which crash in the
reference, run here with every parameter in fp32 (amp: autocast), and on the CPU.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.model import CLIP
from dassl.engine import TRAINER_REGISTRY
from descriptions import load_class_descriptions

from .common import l2_normalize
from .deep_prompts import PromptedCLIP, vision_width
from .ivlp import IVLP, IVLPPrompts
from .zsclip import class_mean_weights, float_text_features


def description_pooling(global_feature: Tensor, patches: Tensor, attributes: Tensor) -> Tensor:
    """The fused image feature z (B, D) from g (B, D), patch tokens Lp (B, N, D) and the
    description features A (P, D), all un-normalised (see the module docstring)."""
    relevance = torch.softmax(global_feature @ attributes.t(), dim=1)  # (B, P)
    attention = torch.softmax(attributes @ patches.transpose(1, 2), dim=-1)  # (B, P, N)
    local = attention @ patches  # (B, P, D)
    weight = (relevance * attention.amax(dim=-1)).sum(dim=1, keepdim=True)  # (B, 1)
    pooled = (relevance.unsqueeze(-1) * local).sum(dim=1)  # (B, D)
    return (1 - weight) * global_feature + weight * pooled


class SAPPrompts(IVLPPrompts):
    """IVLP's learned tensors over the description sentences, plus `mybias` (D,), model dtype, zeros."""

    def __init__(self, opts: CfgNode, sentences: Sequence[str], clip_model: CLIP):
        super().__init__(opts, sentences, clip_model, method="SAP", template="{name}")
        self.mybias = nn.Parameter(torch.zeros(clip_model.visual.output_dim, dtype=clip_model.dtype))
        # The reference's checkpoints also hold its teacher image tower.
        self._reference_clip_keys = self._reference_clip_keys | frozenset(
            "base_image_encoder." + key for key in clip_model.visual.state_dict())


class SAPCLIP(PromptedCLIP):
    """The prompted CLIP classifying by descriptions (see the module docstring).

    Buffers (not saved, rebuilt for each class set): `attribute_features` A (P, D) fp32,
    `teacher_text_features` t̂0 (P, D) fp32 normalised, `class_weights` (C, P) in the model dtype.
    """

    def __init__(self, clip_model: CLIP, prompts: SAPPrompts, owners: Sequence[int], n_cls: int,
                 attribute_features: Tensor, teacher_text_features: Tensor,
                 loss_weights: tuple[float, float] = (25.0, 10.0)):
        super().__init__(clip_model, prompts)
        self.text_loss_weight, self.image_loss_weight = loss_weights
        self.register_buffer("attribute_features", attribute_features, persistent=False)
        self.register_buffer("teacher_text_features", l2_normalize(teacher_text_features), persistent=False)
        self.register_buffer("class_weights", class_mean_weights(owners, n_cls, clip_model.dtype),
                             persistent=False)
        self.n_patches = clip_model.visual.positional_embedding.shape[0] - 1

    @property
    def frozen_image_encoder(self) -> bool:
        return False  # the patch tokens and the bias are needed, not the cacheable pooled output

    def image_features(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(g (B, D), patch tokens + mybias (B, N, D)): the last block's tokens through ln_post and proj."""
        _, tokens = self.clip.encode_image(image, self.vision_prompt(), return_tokens=True)
        visual = self.clip.visual
        projected = visual.ln_post(tokens[:, :1 + self.n_patches]) @ visual.proj
        return projected[:, 0], projected[:, 1:] + self.prompts.mybias

    def forward(self, image: Tensor, label: Optional[Tensor] = None):
        """Class logits (B, C); with `label`, the loss terms (CE, text L1, image L1), weighted."""
        global_feature, patches = self.image_features(image)
        attributes = self.attribute_features.to(patches.dtype)
        fused = description_pooling(global_feature, patches, attributes)
        text = self.text_features()  # (P, D) normalised; once per evaluation
        scale = self.clip.logit_scale.exp()
        logits = (scale * l2_normalize(fused) @ text.t()) @ self.class_weights.t()
        if label is None:
            return logits
        with torch.no_grad():
            teacher_image = l2_normalize(self.clip.encode_image(image))
        return (F.cross_entropy(logits, label),
                self.text_loss_weight * F.l1_loss(text, self.teacher_text_features),
                self.image_loss_weight * F.l1_loss(l2_normalize(global_feature), teacher_image))


def build_sap_clip(cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> SAPCLIP:
    opts = cfg.TRAINER.SAP
    vision_width(clip_model, "SAP")  # the patch tokens need a ViT
    descriptions = load_class_descriptions(cfg, classnames)
    sentences = descriptions.sentences()
    print(f"Descriptions: {len(sentences)} for {len(classnames)} classes from {descriptions.path}")
    prompts = SAPPrompts(opts, sentences, clip_model)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")
    features = float_text_features(clip_model, descriptions.flat + sentences, device)
    n = len(sentences)
    return SAPCLIP(clip_model, prompts, descriptions.owners, len(classnames), features[:n], features[n:],
                   (opts.TEXT_LOSS_WEIGHT, opts.IMAGE_LOSS_WEIGHT))


@TRAINER_REGISTRY.register()
class SAP(IVLP):
    """SAP; saved under VLPromptLearner/ as the reference."""

    config_node = "SAP"
    trainable_keys = ("prompt_learner", "VPT", "mybias")

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.SAP = CN()
        cfg.TRAINER.SAP.N_CTX_VISION = 2  # number of vision context tokens
        cfg.TRAINER.SAP.N_CTX_TEXT = 2  # number of text context tokens (replacing the first words)
        cfg.TRAINER.SAP.CTX_INIT = "a photo of a"  # initialization words (used when N_CTX_TEXT <= 4)
        cfg.TRAINER.SAP.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        cfg.TRAINER.SAP.PROMPT_DEPTH_VISION = 9  # vision prompts in blocks 0..D-1 (0 = none)
        cfg.TRAINER.SAP.PROMPT_DEPTH_TEXT = 9  # text prompts in blocks 0..D-1 (1 = shallow)
        cfg.TRAINER.SAP.REDUCTION = 16  # read by the reference, used by nothing
        cfg.TRAINER.SAP.TEXT_LOSS_WEIGHT = 25  # L1 to the frozen description features
        cfg.TRAINER.SAP.IMAGE_LOSS_WEIGHT = 10  # L1 to the frozen image feature
        # Not in the reference: as TRAINER.IVLP.ROUND_PROMPTS_TO_FP16 (fp16 values of the VPT
        # tokens when CLIP runs in fp32, as the reference's .half() casts).
        cfg.TRAINER.SAP.ROUND_PROMPTS_TO_FP16 = True

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return build_sap_clip(cfg, classnames, clip_model)

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        # .mean(): one value per GPU under DataParallel.
        loss = sum(term.mean() for term in self.model(image, label))
        return loss, {"loss": loss.item()}
