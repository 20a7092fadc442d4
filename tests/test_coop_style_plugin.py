"""A trainer written for Dassl + OpenAI CLIP in CoOp's style runs unchanged on our dassl/ and clip/.

The plugin below uses only the APIs such files use (clip._MODELS / _download / build_model,
torch.jit.load with a state-dict fallback, its own text encoder over the CLIP modules, Dassl's
registry, optimizer, scheduler, checkpoint helpers and metrics). It is written to tmp_path under a
new trainer name, imported, trained for an epoch through train.py and evaluated with --eval-only.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import textwrap

import pytest

from fixtures.trainer_fixtures import repo_path, run_train

TRAINER_NAME = "CoOpStylePluginTest"

PLUGIN = textwrap.dedent('''
    import os.path as osp

    import torch
    import torch.nn as nn
    from torch.nn import functional as F

    from dassl.engine import TRAINER_REGISTRY, TrainerX
    from dassl.metrics import compute_accuracy
    from dassl.utils import load_pretrained_weights, load_checkpoint
    from dassl.optim import build_optimizer, build_lr_scheduler

    from clip import clip
    from clip.simple_tokenizer import SimpleTokenizer as _Tokenizer

    _tokenizer = _Tokenizer()


    def load_clip_to_cpu(cfg):
        name = cfg.MODEL.BACKBONE.NAME
        path = clip._download(clip._MODELS[name]) if name in clip._MODELS else name
        try:
            jit_model = torch.jit.load(path, map_location="cpu").eval()
            state_dict = None
        except RuntimeError:
            state_dict = torch.load(path, map_location="cpu")
        return clip.build_model(state_dict or jit_model.state_dict())


    class TextEncoder(nn.Module):
        def __init__(self, clip_model):
            super().__init__()
            self.transformer = clip_model.transformer
            self.positional_embedding = clip_model.positional_embedding
            self.ln_final = clip_model.ln_final
            self.text_projection = clip_model.text_projection
            self.dtype = clip_model.dtype

        def forward(self, prompts, tokenized_prompts):
            x = prompts + self.positional_embedding.type(self.dtype)
            x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # the blocks take LND
            x = self.ln_final(x).type(self.dtype)
            eot = tokenized_prompts.argmax(dim=-1)
            return x[torch.arange(x.shape[0]), eot] @ self.text_projection


    class PromptLearner(nn.Module):
        def __init__(self, cfg, classnames, clip_model):
            super().__init__()
            n_ctx = cfg.TRAINER.COOP.N_CTX
            dtype = clip_model.dtype
            ctx_dim = clip_model.ln_final.weight.shape[0]
            ctx_vectors = torch.empty(n_ctx, ctx_dim, dtype=dtype)
            nn.init.normal_(ctx_vectors, std=0.02)
            self.ctx = nn.Parameter(ctx_vectors)

            classnames = [name.replace("_", " ") for name in classnames]
            self.name_lens = [len(_tokenizer.encode(name)) for name in classnames]
            prompts = [" ".join(["X"] * n_ctx) + " " + name + "." for name in classnames]
            tokenized_prompts = torch.cat([clip.tokenize(p) for p in prompts])
            with torch.no_grad():
                embedding = clip_model.token_embedding(tokenized_prompts).type(dtype)
            self.register_buffer("token_prefix", embedding[:, :1, :])
            self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])
            self.n_cls = len(classnames)
            self.tokenized_prompts = tokenized_prompts

        def forward(self):
            ctx = self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
            return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)


    class CustomCLIP(nn.Module):
        def __init__(self, cfg, classnames, clip_model):
            super().__init__()
            self.prompt_learner = PromptLearner(cfg, classnames, clip_model)
            self.tokenized_prompts = self.prompt_learner.tokenized_prompts
            self.image_encoder = clip_model.visual
            self.text_encoder = TextEncoder(clip_model)
            self.logit_scale = clip_model.logit_scale
            self.dtype = clip_model.dtype

        def forward(self, image):
            image_features = self.image_encoder(image.type(self.dtype))
            text_features = self.text_encoder(self.prompt_learner(), self.tokenized_prompts)
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            return self.logit_scale.exp() * image_features @ text_features.t()


    @TRAINER_REGISTRY.register()
    class NAME(TrainerX):
        def check_cfg(self, cfg):
            assert cfg.TRAINER.COOP.PREC in ["fp16", "fp32", "amp"]

        def build_model(self):
            cfg = self.cfg
            classnames = self.dm.dataset.classnames
            clip_model = load_clip_to_cpu(cfg)
            if cfg.TRAINER.COOP.PREC in ("fp32", "amp"):
                clip_model.float()
            self.model = CustomCLIP(cfg, classnames, clip_model)
            for name, param in self.model.named_parameters():
                if "prompt_learner" not in name:
                    param.requires_grad_(False)
            if cfg.MODEL.INIT_WEIGHTS:
                load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)
            self.model.to(self.device)
            self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
            self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
            self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)

        def forward_backward(self, batch):
            image, label = self.parse_batch_train(batch)
            output = self.model(image)
            loss = F.cross_entropy(output, label)
            self.model_backward_and_update(loss)
            summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
            if (self.batch_idx + 1) == self.num_batches:
                self.update_lr()
            return summary

        def parse_batch_train(self, batch):
            return batch["img"].to(self.device), batch["label"].to(self.device)

        def load_model(self, directory, epoch=None):
            model_file = "model-best.pth.tar" if epoch is None else "model.pth.tar-" + str(epoch)
            for name in self.get_model_names():
                model_path = osp.join(directory, name, model_file)
                checkpoint = load_checkpoint(model_path)
                state_dict = checkpoint["state_dict"]
                del state_dict["token_prefix"]
                del state_dict["token_suffix"]
                print('Loading weights to {} from "{}" (epoch = {})'.format(name, model_path, checkpoint["epoch"]))
                self._models[name].load_state_dict(state_dict, strict=False)
''').replace("class NAME(", f"class {TRAINER_NAME}(")


def import_plugin(path: str) -> None:
    from dassl.engine import TRAINER_REGISTRY

    if TRAINER_NAME in TRAINER_REGISTRY.registered_names():
        return
    spec = importlib.util.spec_from_file_location("coop_style_plugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


# CoOp-style loaders try torch.jit.load first (deprecated in torch 2.x) and fall back to torch.load.
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_coop_style_plugin_trains_and_evaluates(tmp_path, coop_data_root, tiny_vit_path):
    plugin = tmp_path / "coop_style_plugin.py"
    plugin.write_text(PLUGIN)
    import_plugin(str(plugin))

    flags = ("--seed", "1", "--trainer", TRAINER_NAME,
             "--config-file", repo_path("configs/trainers/CoOp/vit_b16_ep50.yaml"))
    opts = ("TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "4", "DATASET.NUM_SHOTS", "2",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.MAX_EPOCH", "1", "DATALOADER.TEST.BATCH_SIZE", "16")
    out = str(tmp_path / "run")
    log = run_train(out, *flags, opts=opts, root=coop_data_root, backbone=tiny_vit_path)
    assert re.search(r"^epoch \[1/1\] batch \[2/2\] .* loss \d+\.\d{4} .* acc ", log, re.M)
    assert "Finish training" in log and "* accuracy: " in log
    assert os.path.isfile(os.path.join(out, "prompt_learner", "model.pth.tar-1"))

    eval_log = run_train(str(tmp_path / "eval"), *flags, "--eval-only", "--model-dir", out, "--load-epoch", "1",
                         opts=opts, root=coop_data_root, backbone=tiny_vit_path)
    assert "Loading weights to prompt_learner from" in eval_log
    assert eval_log.count("* accuracy: ") == 1
