"""One training step (forward + backward + SGD step): our trainers' models vs a straightforward
reference-style implementation, on a random ViT-B/16-shaped CLIP, fp32 on CPU.

ours       the model classes the trainers build (CoOp: trainers.base.PromptCLIP, MaPLe:
           trainers.deep_prompts.PromptedCLIP, CoCoOp: trainers.cocoop.CustomCLIP) with the text
           path of clip.encode (truncation at the last EOT, shared prefix) and SDPA attention.
           SoftCPT (NATA, General-10-shaped suite): trainers.mtcoop.SoftCPTCLIP.
reference  written here as the reference repositories compute it: prompts of all 77 positions,
           OpenAI's sequence-first blocks with nn.MultiheadAttention in both towers, every class
           prompt re-encoded at every step; CoCoOp loops over the images of the batch and
           encodes the n_cls prompts of each (its graph is kept for the backward pass).
Both start from the same prompt parameters, images and labels; the first step's losses and
gradients are compared. Steps are interleaved (ours, reference, ours, ...) and the median of
--repeats is reported. "image floor" is the frozen image tower alone (forward, no grad): a CoOp
step can never be faster than that, which bounds the CoOp speed-up at (reference / floor).

Peak memory (CoCoOp; --memory-all: every case): each variant runs in a fresh subprocess (glibc
told to mmap every block above 64 KB, so freed memory leaves the process); after a warm-up step
the freed heap is returned to the OS (malloc_trim) and the peak resident set size is reset (Linux
/proc/self/clear_refs, "5"); one step runs and the reported value is VmHWM minus the RSS before
that step, i.e. the extra memory the step itself needs (activations kept for backward,
temporaries, gradients), as the OS counts it. CoCoOp is measured at batch 1, 2, 4: the reference
keeps every image's n_cls x 77 text graph (GBs per image), so a size whose predicted peak (linear
in the batch) does not fit in the available memory is skipped and said so rather than risking the
machine's OOM killer.

SAP (--cases sap-40,sap-100, not in the default list): ~8.5 descriptions per class (P = 340 at 40
classes, 850 at 100), batch 4, the main config (4+4 tokens, depth 9); ours = trainers.sap.SAPCLIP
(shared-prefix text path), the reference = every description sentence on 77 positions with the deep
prompts, the prompted image tower's last-block tokens through nn.MultiheadAttention blocks, the
teacher image tower, the same pooling and losses; both with the frozen description features computed
once, as the reference does at construction. Peak memory is measured for both; the reference's is
not run where its prediction (from a smaller case measured in the same run, linear in P) does not
fit in the available memory.

    python bench/train_step.py [--quick] [--repeats 3] [--threads N] [--memory-all]
                               [--cases coop-100,coop-397,maple-100,maple-100-b4,cocoop-100,sap-40,sap-100,
                                        softcpt-nata-g10,mcoop-mt-300]

mcoop-mt-300 (MVLPT's multitask MCoOp, not in the default run): 300 classes as 3 tasks of 100,
label vectors over the union and soft-target CE; reference = MVLPT's default text path (77
positions, every class re-encoded each step).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode as CN

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from clip.model import CLIP, convert_weights  # noqa: E402
from dassl.data import TaskLayout  # noqa: E402
from text_encoder import CLASS_NAMES  # noqa: E402
from descriptions import ClassDescriptions  # noqa: E402
from trainers import cocoop, coop, label_alignment, maple, mtcoop, mvlpt, sap  # noqa: E402
from trainers.base import PromptCLIP  # noqa: E402
from trainers.common import l2_normalize  # noqa: E402
from trainers.deep_prompts import PromptedCLIP  # noqa: E402
from trainers.multitask import multitask_loss  # noqa: E402
from trainers.zsclip import float_text_features  # noqa: E402


@dataclass(frozen=True)
class Case:
    method: str  # coop, maple, cocoop, sap, coop-lamm, lamm or softcpt
    classes: int
    batch: int
    speedup_target: float
    memory_target: Optional[float] = None  # reference peak / ours peak
    run_reference: bool = True  # False: the reference does not fit in memory (its peak is predicted)


CASES = {
    "coop-100": Case("coop", 100, 32, 2.0),
    "coop-397": Case("coop", 397, 32, 5.0),
    "maple-100": Case("maple", 100, 32, 1.5),
    "maple-100-b4": Case("maple", 100, 4, 1.5),  # batch of configs/trainers/MaPLe (extra row)
    "cocoop-100": Case("cocoop", 100, 4, 6.0, memory_target=4.0),
    # LAMM (trainers/label_alignment.py): CoOp+LAMM and LAMM alone (context frozen), hierarchical loss.
    "coop-lamm-100": Case("coop-lamm", 100, 32, 2.0),
    "lamm-100": Case("lamm", 100, 32, 2.0),
    "sap-40": Case("sap", 40, 4, 3.0),
    "sap-100": Case("sap", 100, 4, 3.0, run_reference=False),  # ~850 descriptions: does it fit in 24 GB?
    # SoftCPT NATA on a General-10-shaped suite (10 tasks, 1191 classes), main_mtcoop.sh's batch
    "softcpt-nata-g10": Case("softcpt", 1191, 32, 3.0),
    # MVLPT's multitask MCoOp: 3 tasks of 100 classes, soft-target CE over the union (extra row).
    "mcoop-mt-300": Case("mvlpt", 300, 32, 3.0),
}
GENERAL10_SIZES = (100, 47, 10, 100, 101, 102, 37, 196, 397, 101)
LAMM_METHODS = ("coop-lamm", "lamm")
DEFAULT_CASES = "coop-100,coop-397,maple-100,maple-100-b4,cocoop-100"
LR = {"coop": 0.002, "maple": 0.0035, "cocoop": 0.002, "sap": 0.0025,  # the shipped configs' SGD settings
      "coop-lamm": 0.002, "lamm": 0.002, "softcpt": 0.002, "mvlpt": 0.002}
MT_TASKS = 3  # mvlpt: the classes split into this many tasks of equal size


def class_names(n: int) -> List[str]:
    """n distinct class names of 1-10 BPE tokens: the 100 of bench/text_encoder.py, then the same
    with a SUN397-style qualifier ("indoor", "outdoor", ...)."""
    qualifiers = ["", " indoor", " outdoor", " exterior", " interior"]
    return [CLASS_NAMES[i % 100].replace("_", " ") + qualifiers[i // 100] for i in range(n)]


def vit_b16(depth: int) -> CLIP:
    """Random CLIP with ViT-B/16's shapes (depth 12 = ViT-B/16; --quick uses fewer blocks)."""
    model = CLIP(embed_dim=512, image_resolution=224, vision_layers=depth, vision_width=768,
                 vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=depth)
    return model.eval().requires_grad_(False)


def method_cfg(method: str, depth: int) -> CN:
    cfg = CN()
    cfg.TRAINER = CN()
    if method == "coop":
        coop.CoOp.extend_cfg(cfg)  # N_CTX 16, random generic context, class token at the end
    elif method == "sap":
        sap.SAP.extend_cfg(cfg)
        opts = cfg.TRAINER.SAP  # vit_b16_c2_ep20_batch4_4+4ctx
        opts.N_CTX_TEXT = opts.N_CTX_VISION = 4
        opts.PROMPT_DEPTH_TEXT = opts.PROMPT_DEPTH_VISION = min(9, depth)
    elif method == "mvlpt":
        cfg.DATASET = CN()
        mvlpt.MVLPT.extend_cfg(cfg)
        cfg.TRAINER.MVLPT.COOP.N_CTX = 16  # MCoOp M=16, class token in the middle (the defaults)
    elif method == "maple":
        maple.MaPLe.extend_cfg(cfg)  # N_CTX 2 from "a photo of a", PROMPT_DEPTH 9
        cfg.TRAINER.MAPLE.PROMPT_DEPTH = min(9, depth)
    elif method == "softcpt":
        mtcoop.MTCoOp.extend_cfg(cfg)  # NATA as in scripts/softcpt/main_mtcoop.sh
        cfg.TRAINER.MTCOOP.CLASS_N_CTX = 0
        cfg.TRAINER.MTCOOP.TASK_N_CTX = 4
        cfg.TRAINER.MTCOOP.PG_TYPE = "lin"
    else:
        cocoop.CoCoOp.extend_cfg(cfg)
        cfg.TRAINER.COCOOP.N_CTX = 4  # vit_b16_c4_ep10_batch1_ctxv1, CoCoOp's main setting
        cfg.TRAINER.COCOOP.CTX_INIT = "a photo of a"
    return cfg


# --- the reference-style computation -------------------------------------------------------

def ref_block(block: nn.Module, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """OpenAI's residual block on sequence-first x (L, N, D) through nn.MultiheadAttention."""
    h = block.ln_1(x)
    x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
    return x + block.mlp(block.ln_2(x))


def ref_text(clip_model: CLIP, prompts: Tensor, eot: Tensor, deep: Sequence[Tensor] = ()) -> Tensor:
    """CoOp's TextEncoder on all 77 positions; deep[i - 1] replaces positions 1..n before block i
    (MaPLe's text prompts)."""
    x = (prompts + clip_model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(clip_model.transformer.resblocks):
        if 0 < i <= len(deep):
            p = deep[i - 1]
            x = torch.cat([x[:1], p.unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + p.shape[0]:]])
        x = ref_block(block, x, block.attn_mask)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), eot] @ clip_model.text_projection


def ref_image(clip_model: CLIP, images: Tensor, shallow: Optional[Tensor] = None,
              deep: Sequence[Tensor] = (), tokens: bool = False) -> Tensor:
    """OpenAI's ViT; MaPLe's shallow prompts appended after [CLS, patches], deep[i - 1] replacing
    them before block i. tokens: the last block's output (B, L, width) instead (SAP's hook)."""
    visual = clip_model.visual
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    batch = x.shape[0]
    x = torch.cat([visual.class_embedding.expand(batch, 1, -1), x], dim=1) + visual.positional_embedding
    if shallow is not None:
        x = torch.cat([x, shallow.expand(batch, -1, -1)], dim=1)
    x = visual.ln_pre(x).permute(1, 0, 2)
    for i, block in enumerate(visual.transformer.resblocks):
        if 0 < i <= len(deep):
            p = deep[i - 1]
            x = torch.cat([x[:x.shape[0] - p.shape[0]], p.unsqueeze(1).expand(-1, batch, -1)])
        x = ref_block(block, x)
    if tokens:
        return x.permute(1, 0, 2)
    return visual.ln_post(x[0]) @ visual.proj


def full_prompts(learner: nn.Module, ctx: Tensor) -> Tensor:
    """[SOS | ctx | class name . EOT pad] over all 77 positions; ctx (n, w) or per image (B, n, w)."""
    n_cls = learner.n_cls
    ctx = ctx.expand(n_cls, -1, -1) if ctx.dim() == 2 else ctx[:, None].expand(-1, n_cls, -1, -1)
    lead = ctx.shape[:-3]
    return torch.cat([learner.token_prefix.expand(*lead, -1, -1, -1), ctx,
                      learner.token_suffix.expand(*lead, -1, -1, -1)], dim=-2)


PARTS = ["ears", "tail", "wings", "legs", "fur", "leaves", "petals", "windows", "wheels", "stripes", "shell",
         "beak", "handle", "roof", "fins", "spots"]
ADJECTIVES = ["long", "short", "round", "pointed", "bright red", "dark brown", "smooth", "rough", "thin",
              "striped", "shiny", "curved", "tiny", "large flat", "soft white", "pale yellow"]


def synthetic_descriptions(names: Sequence[str]) -> ClassDescriptions:
    """8 or 9 descriptions per class, 3 to 9 words ("has long, thin ears", "is found near water"),
    templated sentences of 11 to 25 tokens as in SAP's published files (mean ~16)."""
    per_class = []
    for c, _ in enumerate(names):
        entries = []
        for k in range(8 + c % 2):
            adjective, part = ADJECTIVES[(c + 3 * k) % 16], PARTS[(5 * c + k) % 16]
            kind = (c + k) % 4
            entries.append(f"has {adjective} {part}" if kind == 0 else
                           f"is usually seen with {adjective} {part} nearby" if kind == 1 else
                           f"has {adjective}, {part} and a {ADJECTIVES[(c + k) % 16]} body" if kind == 2 else
                           f"is a kind of object with {part}")
        per_class.append(entries)
    return ClassDescriptions(list(names), per_class, "(synthetic)")


def ref_sap_forward(clip_model: CLIP, prompts: nn.Module, model: nn.Module,
                    images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """SAP's forward as the reference computes it: (class logits, CLS feature g, normalised
    description features). Every description sentence on 77 positions, the prompted image tower's
    last-block tokens from OpenAI's blocks; `prompts` are SAPPrompts, `model` (a SAPCLIP) gives
    the frozen description features and the class weights."""
    learner, visual = prompts.prompt_learner, clip_model.visual
    text = ref_text(clip_model, full_prompts(learner, learner.ctx), learner.eot, prompts.text_encoder.deep())
    text = l2_normalize(text)
    vision = prompts.image_encoder.vision_prompt()
    y = visual.ln_post(ref_image(clip_model, images, vision.shallow, vision.deep, tokens=True)) @ visual.proj
    bias = torch.cat([torch.zeros_like(prompts.mybias)[None], prompts.mybias.expand(y.shape[1] - 1, -1)])
    y = y + bias
    g, patches = y[:, 0], y[:, 1:visual.positional_embedding.shape[0]]
    attributes = model.attribute_features.to(y.dtype)
    relevance = torch.softmax(g @ attributes.t(), dim=1)
    attention = torch.softmax(torch.einsum("pd,bnd->bpn", attributes, patches), dim=-1)
    local = torch.einsum("bpn,bnd->bpd", attention, patches)
    weight = torch.einsum("bp,bp->b", relevance, attention.max(dim=-1).values)[:, None]
    fused = (1 - weight) * g + weight * torch.einsum("bp,bpd->bd", relevance, local)
    logits = (clip_model.logit_scale.exp() * l2_normalize(fused) @ text.t()) @ model.class_weights.t()
    return logits, g, text


def sap_variants(clip_model: CLIP, cfg: CN, names: List[str]) -> Tuple[nn.Module, nn.Module, Loss, Loss]:
    """(our SAP model, the reference's copy of its prompts, our loss, the reference-style loss)."""
    descriptions = synthetic_descriptions(names)
    sentences = descriptions.sentences()
    with contextlib.redirect_stdout(io.StringIO()):
        prompts = sap.SAPPrompts(cfg.TRAINER.SAP, sentences, clip_model)
    features = float_text_features(clip_model, descriptions.flat + sentences, torch.device("cpu"))
    n = len(sentences)
    model = sap.SAPCLIP(clip_model, prompts, descriptions.owners, len(names), features[:n], features[n:])
    ref = copy.deepcopy(prompts)

    def ours(images: Tensor, labels: Tensor) -> Tensor:
        return sum(model(images, labels))

    def reference(images: Tensor, labels: Tensor) -> Tensor:
        logits, g, text = ref_sap_forward(clip_model, ref, model, images)
        with torch.no_grad():
            teacher = l2_normalize(ref_image(clip_model, images))
        return (F.cross_entropy(logits, labels) + 25 * F.l1_loss(text, model.teacher_text_features)
                + 10 * F.l1_loss(l2_normalize(g), teacher))

    return model, ref, ours, reference


# --- the variants ----------------------------------------------------------------------------

Loss = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Variant:
    loss: Loss
    params: List[nn.Parameter]
    optimizer: torch.optim.Optimizer


def sgd(params: List[nn.Parameter], method: str) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=LR[method], momentum=0.9, weight_decay=5e-4)


def task_sizes(classes: int) -> List[int]:
    """General-10's class counts scaled to `classes` in all (each task at least 2)."""
    sizes = [max(2, round(n * classes / sum(GENERAL10_SIZES))) for n in GENERAL10_SIZES]
    sizes[-1] += classes - sum(sizes)
    return sizes


def softcpt_variants(case: Case, clip_model: CLIP, cfg: CN) -> Dict[str, Tuple[Loss, List[nn.Parameter]]]:
    """NATA: ours = trainers.mtcoop.SoftCPTCLIP; reference = every prompt of all 77 positions,
    the task prompts and then each task's class prompts re-encoded at every step."""
    sizes = task_sizes(case.classes)
    names = [[f"{name} {t}" if n > 397 else name for name in class_names(min(n, 397)) * (n // 397 + 1)][:n]
             for t, n in enumerate(sizes)]
    tasks = tuple(f"task {name}" for name in class_names(len(sizes)))
    layout = TaskLayout(tasks, tuple(sizes), ("overall_acc",) * len(sizes), tuple(tuple(n) for n in names))
    with contextlib.redirect_stdout(io.StringIO()):
        model = mtcoop.SoftCPTCLIP(cfg, layout, clip_model)
    ref_task, ref_gen = copy.deepcopy(model.task_prompt_learner), copy.deepcopy(model.prompt_gen)
    scale = clip_model.logit_scale.exp()
    starts = torch.tensor([start for start, _ in model.ranges])

    def label_vectors(labels: Tensor) -> Tensor:
        task = torch.searchsorted(starts, labels, right=True) - 1
        vec = torch.full((len(labels), case.classes), -1, dtype=torch.long)
        for row, (t, y) in enumerate(zip(task.tolist(), labels.tolist())):
            start, end = model.ranges[t]
            vec[row, start:end] = 0
            vec[row, y] = 1
        return vec

    def ours(images: Tensor, labels: Tensor) -> Tensor:
        return multitask_loss(model(images)[0], label_vectors(labels), model.ranges)

    def reference(images: Tensor, labels: Tensor) -> Tensor:
        task_feat = ref_text(clip_model, full_prompts(ref_task, ref_task.ctx), ref_task.eot)
        contexts = ref_gen(task_feat)
        text = torch.cat([ref_text(clip_model, full_prompts(p, ctx), p.eot)
                          for p, ctx in zip(model.prompt_learner, contexts)])
        logits = scale * l2_normalize(ref_image(clip_model, images)) @ l2_normalize(text).t()
        return multitask_loss(logits, label_vectors(labels), model.ranges)

    ours_params = [model.task_prompt_learner.ctx, model.prompt_gen.proj]
    return {"ours": (ours, ours_params), "reference": (reference, [ref_task.ctx, ref_gen.proj])}


def build_lamm_variants(case: Case, depth: int, fp16: bool = False,
                        device: str = "cpu") -> Tuple[CLIP, Dict[str, Variant]]:
    """LAMM on CoOp's vit_b16_ep50_ctxv1 ("a photo of a"), --triplet-loss (and --origin-clip for
    "lamm"). ours: label_alignment.branch_outputs (both branches in one shared-prefix call; with the
    context frozen the name prompts' features are computed once). reference: both branches'
    n_cls prompts on all 77 positions at every step, then the same loss formula."""
    torch.manual_seed(0)
    clip_model = vit_b16(depth)
    if fp16:
        convert_weights(clip_model)
    clip_model.to(device)
    cfg = method_cfg("coop", depth)
    cfg.TRAINER.COOP.CTX_INIT = "a photo of a"
    cfg.TRAINER.LAMM.ENABLED = cfg.TRAINER.LAMM.LOSS = True
    cfg.TRAINER.LAMM.FREEZE_CTX = case.method == "lamm"
    names = class_names(case.classes)
    with contextlib.redirect_stdout(io.StringIO()):
        model = PromptCLIP(clip_model, coop.PromptLearner(cfg, names, clip_model))
        label_alignment.attach_labels(model.prompt_learner, clip_model, cfg)
    model.to(device)
    learner = model.prompt_learner
    learner.ctx.requires_grad_(not cfg.TRAINER.LAMM.FREEZE_CTX)
    ref = copy.deepcopy(learner)
    ours_params = [p for p in learner.parameters() if p.requires_grad]
    ref_params = [p for p in ref.parameters() if p.requires_grad]
    scale = clip_model.logit_scale.exp()
    weights = label_alignment.LossWeights(param=1.0, feat=1.0, logit=0.05, temperature=2.0)  # --shots 1
    cache = label_alignment.FixedBranchCache()

    def ours(images: Tensor, labels: Tensor) -> Tensor:
        out = label_alignment.branch_outputs(model, images, cache)
        return label_alignment.hierarchical_loss(out, labels, learner.token_classes, learner.fix_token, weights)[0]

    def reference(images: Tensor, labels: Tensor) -> Tensor:
        image = l2_normalize(ref_image(clip_model, images))
        m = ref.token_classes.shape[1]
        learned = torch.cat([ref.token_prefix, ref.ctx.expand(ref.n_cls, -1, -1), ref.token_classes,
                             ref.token_suffix[:, m:]], dim=1)
        text = l2_normalize(ref_text(clip_model, learned, ref.eot))
        text_fixed = l2_normalize(ref_text(clip_model, full_prompts(ref, ref.ctx), ref.eot))
        out = label_alignment.BranchOutputs(text, text_fixed, scale * image @ text.t(), scale * image @ text_fixed.t())
        return label_alignment.hierarchical_loss(out, labels, ref.token_classes, ref.fix_token, weights)[0]

    return clip_model, {
        "ours": Variant(ours, ours_params, sgd(ours_params, case.method)),
        "reference": Variant(reference, ref_params, sgd(ref_params, case.method)),
    }


def build_variants(case: Case, depth: int, fp16: bool = False,
                   device: str = "cpu") -> Tuple[CLIP, Dict[str, Variant]]:
    """(the frozen CLIP, {"ours": ..., "reference": ...}) from the same random draws.

    fp16=True converts CLIP as the trainers do for PREC fp16 (bench/cuda_check.py runs "ours" so
    on CUDA; the reference-style functions here are fp32 only)."""
    if case.method in LAMM_METHODS:
        return build_lamm_variants(case, depth, fp16, device)
    torch.manual_seed(0)
    clip_model = vit_b16(depth)
    if fp16:
        convert_weights(clip_model)
    clip_model.to(device)
    cfg = method_cfg(case.method, depth)
    if case.method == "softcpt":
        variants = softcpt_variants(case, clip_model, cfg)
        return clip_model, {name: Variant(loss, params, sgd(params, case.method))
                            for name, (loss, params) in variants.items()}
    names = class_names(case.classes)
    if case.method == "sap":
        model, ref, ours, reference = sap_variants(clip_model, cfg, names)
        ours_params = [p for p in model.prompts.parameters() if p.requires_grad]
        ref_params = [p for p in ref.parameters() if p.requires_grad]
        return clip_model, {"ours": Variant(ours, ours_params, sgd(ours_params, case.method)),
                            "reference": Variant(reference, ref_params, sgd(ref_params, case.method))}
    with contextlib.redirect_stdout(io.StringIO()):  # the learners' init messages
        if case.method == "coop":
            model: nn.Module = PromptCLIP(clip_model, coop.PromptLearner(cfg, names, clip_model))
        elif case.method == "mvlpt":
            model = mvlpt.MVLPTCLIP(clip_model, mvlpt.MultitaskVLPromptLearner(cfg, names, clip_model))
        elif case.method == "maple":
            model = PromptedCLIP(clip_model, maple.MaPLePrompts(cfg, names, clip_model))
        else:
            model = cocoop.CustomCLIP(clip_model, cocoop.PromptLearner(cfg, names, clip_model))
    model.to(device)
    learner = model.prompts.prompt_learner if case.method == "maple" else model.prompt_learner
    ref = copy.deepcopy(learner)  # the same initial values, its own parameters
    ours_params = [p for p in learner.parameters() if p.requires_grad]
    ref_params = [p for p in ref.parameters() if p.requires_grad]
    scale = clip_model.logit_scale.exp()

    if case.method == "cocoop":
        learner.train()  # CustomCLIP returns the CE loss while its learner trains

        def ours(images: Tensor, labels: Tensor) -> Tensor:
            return model(images, labels)

        def reference(images: Tensor, labels: Tensor) -> Tensor:
            features = l2_normalize(ref_image(clip_model, images))
            shifted = ref.ctx + ref.meta_net(features).unsqueeze(1)  # (B, n, w)
            logits = []
            for feature, prompts in zip(features, full_prompts(ref, shifted)):
                text = l2_normalize(ref_text(clip_model, prompts, ref.eot))
                logits.append(scale * feature @ text.t())
            return F.cross_entropy(torch.stack(logits), labels)
    elif case.method == "mvlpt":
        size = case.classes // MT_TASKS
        layout = TaskLayout(tuple(f"task{t}" for t in range(MT_TASKS)), (size,) * MT_TASKS, ("accuracy",) * MT_TASKS)

        def targets(labels: Tensor) -> Tensor:
            """The soft targets of the items' label vectors over the union (one-hot here)."""
            return mvlpt.soft_targets(layout.label_vectors(labels // size, labels % size))

        def ours(images: Tensor, labels: Tensor) -> Tensor:
            return F.cross_entropy(model(images), targets(labels))

        def reference(images: Tensor, labels: Tensor) -> Tensor:
            # MVLPT's default (CUT_CONTEXTLEN False): every class prompt over 77 positions, every step.
            image = ref_image(clip_model, images)
            text = ref_text(clip_model, ref.assemble(ref.ctx), ref.eot)
            return F.cross_entropy(scale * l2_normalize(image) @ l2_normalize(text).t(), targets(labels))
    else:
        def ours(images: Tensor, labels: Tensor) -> Tensor:
            return F.cross_entropy(model(images), labels)

        def reference(images: Tensor, labels: Tensor) -> Tensor:
            if case.method == "coop":
                image = ref_image(clip_model, images)
                text = ref_text(clip_model, full_prompts(ref, ref.ctx), ref.eot)
            else:
                deep = list(ref.compound_prompts_text)
                vision_deep = [f(p) for f, p in zip(ref.compound_prompt_projections, deep)]
                image = ref_image(clip_model, images, ref.proj(ref.ctx), vision_deep)
                text = ref_text(clip_model, full_prompts(ref, ref.ctx), ref.eot, deep)
            return F.cross_entropy(scale * l2_normalize(image) @ l2_normalize(text).t(), labels)

    return clip_model, {
        "ours": Variant(ours, ours_params, sgd(ours_params, case.method)),
        "reference": Variant(reference, ref_params, sgd(ref_params, case.method)),
    }


def inputs(case: Case) -> Tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(case.batch, 3, 224, 224, generator=generator)
    classes = case.classes - case.classes % MT_TASKS if case.method == "mvlpt" else case.classes
    labels = torch.randint(0, classes, (case.batch,), generator=generator)
    return images, labels


def step(variant: Variant, images: Tensor, labels: Tensor) -> Tuple[float, float, List[Tensor]]:
    """(seconds, loss, gradients before the update) of zero_grad, forward, backward, SGD step."""
    start = time.perf_counter()
    variant.optimizer.zero_grad()
    loss = variant.loss(images, labels)
    loss.backward()
    grads = [p.grad.clone() for p in variant.params]
    variant.optimizer.step()
    return time.perf_counter() - start, loss.item(), grads


def image_floor(clip_model: CLIP, images: Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        clip_model.encode_image(images)
    return time.perf_counter() - start


# --- peak memory in a subprocess -------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def release_free_memory() -> None:
    """Collect garbage and hand the allocator's free heap back to the OS (glibc)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_child(case_name: str, variant_name: str, depth: int, batch: int, classes: int) -> None:
    case = replace(CASES[case_name], classes=classes, batch=batch)
    _, variants = build_variants(case, depth)
    variant = variants[variant_name]
    images, labels = inputs(case)
    step(variant, images, labels)  # warm-up: optimizer state, allocator, kernels
    release_free_memory()  # else memory freed by the warm-up but kept by malloc would go uncounted
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak RSS) to the current RSS
    before = _status_kb("VmRSS")
    step(variant, images, labels)
    print(json.dumps({"peak_mb": (_status_kb("VmHWM") - before) / 1024}))


def peak_memory_mb(case_name: str, variant: str, depth: int, case: Case, threads: int) -> Optional[float]:
    """The child's peak MB, or None when it died (e.g. killed by the kernel's OOM killer)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", case_name, variant,
           "--depth", str(depth), "--batch", str(case.batch), "--classes", str(case.classes),
           "--threads", str(threads)]
    # Without a fixed threshold glibc raises it after large frees and keeps later blocks in its heap.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"  memory child {case_name}/{variant} batch {case.batch} exited with {done.returncode}: "
              f"{(done.stderr.strip().splitlines() or ['killed'])[-1]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("MemAvailable not in /proc/meminfo")


def descriptions_of(case: Case) -> int:
    """P of a SAP case (synthetic_descriptions: 8 or 9 per class)."""
    return 8 * case.classes + case.classes // 2


def memory_rows(name: str, case: Case, depth: int, threads: int,
                reference_prediction: Optional[float] = None) -> List[dict]:
    """Peak MB of both variants at each batch size (1, 2, 4, ... up to case.batch for a memory
    target, else case.batch only). A value is None where its child died; "skipped" says the
    reference was not run because its predicted peak would not fit in the available memory."""
    sizes = [case.batch]
    if case.memory_target is not None:
        sizes = sorted({min(2 ** k, case.batch) for k in range(case.batch.bit_length() + 1)})
    rows: List[dict] = []
    for batch in sizes:
        sized = replace(case, batch=batch)
        row = {"batch": batch, "ours": peak_memory_mb(name, "ours", depth, sized, threads),
               "reference": None, "skipped": False, "predicted": None, "available": available_mb()}
        last = next((r for r in reversed(rows) if r["reference"] is not None), None)
        if last is not None:
            row["predicted"] = last["reference"] * batch / last["batch"]
        elif reference_prediction is not None:
            row["predicted"] = reference_prediction
        row["skipped"] = not case.run_reference or (
            row["predicted"] is not None and row["predicted"] * 1.25 + 2048 >= row["available"])
        if not row["skipped"]:
            row["reference"] = peak_memory_mb(name, "reference", depth, sized, threads)
        rows.append(row)
    return rows


# --- main ----------------------------------------------------------------------------------

def rel_diff(a: Tensor, b: Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def run_case(name: str, case: Case, depth: int, repeats: int, memory: bool, threads: int,
             reference_prediction: Optional[float] = None) -> dict:
    clip_model, variants = build_variants(case, depth)
    if not case.run_reference:
        del variants["reference"]
    images, labels = inputs(case)
    first: Dict[str, Tuple[float, List[Tensor]]] = {}
    times: Dict[str, List[float]] = {"ours": [], "reference": []}
    floors = []
    for r in range(repeats + 1):  # round 0: warm-up, compared, not timed
        for variant_name, variant in variants.items():
            seconds, loss, grads = step(variant, images, labels)
            if r == 0:
                first[variant_name] = (loss, grads)
            else:
                times[variant_name].append(seconds)
        if r > 0 and case.method in ("coop", "softcpt", "mvlpt", *LAMM_METHODS):
            floors.append(image_floor(clip_model, images))
    result = {"name": name, "case": case, "ours": statistics.median(times["ours"]), "reference": None,
              "loss_diff": None, "grad_diff": None, "speedup": None,
              "floor": statistics.median(floors) if floors else None}
    if case.run_reference:
        (loss_ours, grads_ours), (loss_ref, grads_ref) = first["ours"], first["reference"]
        result["reference"] = statistics.median(times["reference"])
        result["loss_diff"] = abs(loss_ours - loss_ref) / abs(loss_ref)
        result["grad_diff"] = max(rel_diff(a, b) for a, b in zip(grads_ours, grads_ref))
        result["speedup"] = result["reference"] / result["ours"]
    del clip_model, variants, first
    release_free_memory()  # the memory subprocesses need the machine's memory, not this process
    result["memory"] = memory_rows(name, case, depth, threads, reference_prediction) if memory else []
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated, from {list(CASES)}")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 blocks per tower, a quarter of the classes and batch, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per variant (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--memory-all", action="store_true", help="peak memory for every case, not only CoCoOp")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, default=12,
                        help="blocks per tower (default 12 = ViT-B/16; costs and peaks grow linearly with it)")
    parser.add_argument("--batch", type=int, default=0, help="override the cases' batch size")
    parser.add_argument("--classes", type=int, default=0, help="override the cases' class count")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child, args.depth, args.batch, args.classes)
        return

    depth = 2 if args.quick else args.depth
    repeats = 1 if args.quick else args.repeats
    print(f"Training step, random ViT-B/16-shaped CLIP ({depth} blocks per tower{' [--quick]' if args.quick else ''}), "
          f"fp32 CPU, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
          f"median of {repeats} interleaved steps")
    results = []
    reference_mb_per_description = None  # SAP: the reference's peak grows with the descriptions P
    for name in args.cases.split(","):
        case = CASES[name]
        if args.quick:
            case = replace(case, classes=max(2, case.classes // 4), batch=max(1, case.batch // 4))
        if args.classes or args.batch:  # e.g. a reference step that does not fit in memory
            case = replace(case, classes=args.classes or case.classes, batch=args.batch or case.batch)
        memory = args.memory_all or case.memory_target is not None or case.method == "sap"
        prediction = None
        if case.method == "sap" and reference_mb_per_description is not None:
            prediction = reference_mb_per_description * descriptions_of(case)
        result = run_case(name, case, depth, repeats, memory, args.threads or torch.get_num_threads(), prediction)
        if case.method == "sap" and result["memory"] and result["memory"][0]["reference"] is not None:
            reference_mb_per_description = result["memory"][0]["reference"] / descriptions_of(case)
        results.append(result)
        reference = "not run" if result["reference"] is None else f"{result['reference']:.2f} s"
        print(f"  {name}: reference {reference}, ours {result['ours']:.2f} s", flush=True)

    print()
    print(f"{'case':<13} {'classes':>7} {'batch':>5} {'reference s':>11} {'ours s':>7} {'speed-up':>8} "
          f"{'target':>6} {'loss rel diff':>13} {'grad rel diff':>13}")
    for r in results:
        case = r["case"]
        if r["reference"] is None:
            print(f"{r['name']:<13} {case.classes:>7} {case.batch:>5} {'not run':>11} {r['ours']:>7.2f}")
            continue
        met = "ok" if r["speedup"] >= case.speedup_target else "MISSED"
        print(f"{r['name']:<13} {case.classes:>7} {case.batch:>5} {r['reference']:>11.2f} {r['ours']:>7.2f} "
              f"{r['speedup']:>7.2f}x {case.speedup_target:>5g}x {r['loss_diff']:>13.1e} "
              f"{r['grad_diff']:>13.1e}  [{met}]")
    measured = [r for r in results if r["memory"]]
    if measured:
        print()
        print("Peak memory of one step (MB above the RSS before it, fresh subprocess per value):")
        print(f"{'case':<13} {'batch':>5} {'reference':>10} {'ours':>8} {'ratio':>7}  target")
        for r in measured:
            target = r["case"].memory_target
            for row in r["memory"]:
                ours = "died" if row["ours"] is None else f"{row['ours']:.0f}"
                if row["reference"] is None or row["ours"] is None:
                    reference = "skipped" if row["skipped"] else ("died" if row["reference"] is None
                                                                  else f"{row['reference']:.0f}")
                    why = ""
                    if row["skipped"]:
                        predicted = "?" if row["predicted"] is None else f"~{row['predicted']:,.0f}"
                        why = f"  (reference predicted {predicted} MB, {row['available']:,.0f} MB available)"
                    print(f"{r['name']:<13} {row['batch']:>5} {reference:>10} {ours:>8} {'':>7}{why}")
                    continue
                ratio = row["reference"] / max(row["ours"], 1.0)
                verdict = "" if target is None else f">= {target:g}x {'ok' if ratio >= target else 'MISSED'}"
                print(f"{r['name']:<13} {row['batch']:>5} {row['reference']:>10.0f} {row['ours']:>8.0f} "
                      f"{ratio:>6.1f}x  {verdict}")
    floors = [r for r in results if r["floor"] is not None]
    if floors:
        print()
        print("CoOp: the frozen image tower alone (forward, no grad) takes a fixed share of every step:")
        for r in floors:
            print(f"  {r['name']}: image floor {r['floor']:.2f} s -> largest possible speed-up "
                  f"{r['reference'] / r['floor']:.2f}x; text part: reference {r['reference'] - r['floor']:.2f} s, "
                  f"ours {max(r['ours'] - r['floor'], 0.0):.2f} s")


if __name__ == "__main__":
    main()
