"""CLIP: ResNet / ViT image towers and the causal text Transformer, with OpenAI's module names.

Module and attribute names follow OpenAI's release so that its state dicts load unchanged and code
written against OpenAI CLIP (e.g. CoOp's TextEncoder) runs as is. Attention goes through
`F.scaled_dot_product_attention`; `nn.MultiheadAttention` modules only hold the weights.
Internally activations are batch-first; `Transformer.forward` and `ResidualAttentionBlock.forward`
keep OpenAI's sequence-first (L, N, D) interface.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .prompts import VisionPrompt


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 (fp16 statistics are too coarse), cast back to the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        # Parameters cast too, so a model moved wholesale to half/bf16 still works.
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the GELU approximation CLIP was trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def causal_mask(length: int) -> Tensor:
    """Additive (length, length) mask: -inf strictly above the diagonal, 0 elsewhere."""
    return torch.full((length, length), float("-inf")).triu_(1)


def attention(
    attn: nn.MultiheadAttention,
    x_q: Tensor,
    x_kv: Optional[Tensor] = None,
    attn_mask: Optional[Tensor] = None,
    is_causal: bool = False,
) -> Tensor:
    """Multi-head attention with `attn`'s weights through SDPA, batch-first.

    x_q: (N, Lq, D) queries; x_kv: (N, Lk, D) keys/values (None: self-attention on x_q).
    attn_mask: additive float or boolean (True = attend) mask broadcastable to (N, H, Lq, Lk).
    is_causal: causal attention aligned bottom-right, i.e. the queries are the last Lq of the Lk
        positions (query i sees keys 0 .. Lk - Lq + i), which is what attending to a cached prefix
        needs. Returns (N, Lq, D), the same math as `nn.MultiheadAttention` without dropout.
    """
    dim = attn.embed_dim
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    if x_kv is None:
        q, k, v = F.linear(x_q, weight, bias).chunk(3, dim=-1)
    else:
        q = F.linear(x_q, weight[:dim], None if bias is None else bias[:dim])
        k, v = F.linear(x_kv, weight[dim:], None if bias is None else bias[dim:]).chunk(2, dim=-1)
    return attend(attn, q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def attend(
    attn: nn.MultiheadAttention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Optional[Tensor] = None,
    is_causal: bool = False,
) -> Tensor:
    """The SDPA half of `attention`: q (N, Lq, D), k/v (N, Lk, D) already projected with `attn`'s
    in_proj (e.g. cached keys/values of a shared prefix). Splits heads, attends (masks and
    bottom-right `is_causal` as in `attention`), merges heads, applies out_proj -> (N, Lq, D).
    """
    dim, heads = attn.embed_dim, attn.num_heads
    len_q, len_k = q.shape[-2], k.shape[-2]
    # (..., L, D) -> (..., H, L, D / H)
    q, k, v = (t.unflatten(-1, (heads, dim // heads)).transpose(-3, -2) for t in (q, k, v))
    if is_causal and len_q != len_k:
        attn_mask = torch.ones(len_q, len_k, dtype=torch.bool, device=q.device).tril_(len_k - len_q)
        is_causal = False
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask.to(q.dtype)  # SDPA needs the query's dtype (fp16, or bf16 under autocast)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    out = out.transpose(-3, -2).flatten(-2)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    `attn_mask` (a non-persistent buffer, absent from state dicts as in OpenAI's files) is indexed
    by absolute positions; it is sliced to the positions actually run.
    """

    def __init__(self, d_model: int, n_head: int, attn_mask: Optional[Tensor] = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = LayerNorm(d_model)
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """OpenAI's interface: x is sequence-first (L, N, D)."""
        return self.forward_bf(x.transpose(0, 1)).transpose(0, 1)

    def forward_bf(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """Batch-first block on x (N, L, D); returns (N, L, D).

        context: optional (N, P, D) block inputs of the P positions preceding x (e.g. a cached
        prompt prefix). x then occupies positions P .. P + L - 1: its queries attend to the
        context and to itself, and only x's outputs are computed.
        """
        start = 0 if context is None else context.shape[1]
        mask = self.attn_mask
        if mask is not None:
            mask = mask[start:start + x.shape[1], :start + x.shape[1]]
        h = self.ln_1(x)
        h_kv = None if context is None else torch.cat([self.ln_1(context), h], dim=1)
        x = x + attention(self.attn, h, h_kv, attn_mask=mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of `ResidualAttentionBlock`s (`resblocks`), the same mask in every block."""

    def __init__(self, width: int, layers: int, heads: int, attn_mask: Optional[Tensor] = None):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)]
        )

    def forward(self, x: Tensor) -> Tensor:
        """OpenAI's interface: x is sequence-first (L, N, D)."""
        return self.forward_bf(x.transpose(0, 1)).transpose(0, 1)

    def forward_bf(self, x: Tensor) -> Tensor:
        """All blocks on batch-first x (N, L, D)."""
        for block in self.resblocks:
            x = block.forward_bf(x)
        return x


class Bottleneck(nn.Module):
    """ResNet bottleneck whose strided blocks downsample with an average pool (anti-aliasing)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: Optional[nn.Sequential] = None
        if stride > 1 or inplanes != planes * self.expansion:
            # Key names "-1", "0", "1" are those of OpenAI's checkpoints (downsample.0.weight, ...).
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                ("1", nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Pools a feature map with one attention query: the mean token attends to [mean, pixels]."""

    def __init__(self, spacial_dim: int, embed_dim: int, num_heads: int, output_dim: Optional[int] = None):
        super().__init__()
        self.positional_embedding = nn.Parameter(
            torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5
        )
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)  # (N, HW, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        heads = self.num_heads
        q = self.q_proj(x[:, :1]).unflatten(-1, (heads, -1)).transpose(1, 2)
        k = self.k_proj(x).unflatten(-1, (heads, -1)).transpose(1, 2)
        v = self.v_proj(x).unflatten(-1, (heads, -1)).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(1)
        return self.c_proj(out)


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: 3-conv stem with an average pool, anti-aliased strides, attention pooling."""

    def __init__(self, layers: Sequence[int], output_dim: int, heads: int,
                 input_resolution: int = 224, width: int = 64):
        super().__init__()
        self.output_dim = output_dim
        self.input_resolution = input_resolution
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)

        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        embed_dim = width * 32  # layer4's output channels
        self.attnpool = AttentionPool2d(input_resolution // 32, embed_dim, heads, output_dim)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.conv1.weight.dtype)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


def _batched(p: Tensor, batch: int, dtype: torch.dtype) -> Tensor:
    """A prompt given as (n, width), (1, n, width) or (B, n, width) as (B, n, width) in `dtype`."""
    if p.dim() == 2:
        p = p.unsqueeze(0)
    if p.dim() != 3 or p.shape[0] not in (1, batch):
        raise ValueError(f"vision prompt must be (n, width) or ({batch}, n, width), got {tuple(p.shape)}")
    return p.expand(batch, -1, -1).to(dtype)


class VisionTransformer(nn.Module):
    """ViT image tower: patchify, [CLS, patches] + positions, ln_pre, blocks, ln_post(CLS) @ proj."""

    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int,
                 heads: int, output_dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width)
        )
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: Tensor, prompt: Optional[VisionPrompt] = None,
                return_tokens: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Images (B, 3, R, R) -> (B, output_dim), plus the last block's tokens (B, L, width).

        See `clip.prompts.VisionPrompt` for where prompt tokens go.
        """
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, grid ** 2, width)
        batch, _, width = x.shape
        cls = self.class_embedding.to(x.dtype).expand(batch, 1, width)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)

        shallow = None if prompt is None else prompt.shallow
        deep: Sequence[Tensor] = () if prompt is None else prompt.deep
        if deep and shallow is None:
            raise ValueError("deep vision prompts replace the shallow ones: VisionPrompt.shallow is None")
        after_cls = prompt is not None and prompt.position == "after_cls"
        n = 0
        if shallow is not None:
            shallow = _batched(shallow, batch, x.dtype)
            n = shallow.shape[1]
            if not after_cls:
                x = torch.cat([x, shallow], dim=1)
        x = self.ln_pre(x)
        if shallow is not None and after_cls:
            x = torch.cat([x[:, :1], shallow, x[:, 1:]], dim=1)

        for i, block in enumerate(self.transformer.resblocks):
            if 0 < i <= len(deep):
                p = _batched(deep[i - 1], batch, x.dtype)
                if p.shape[1] != n:
                    raise ValueError(f"deep vision prompt {i - 1} has {p.shape[1]} tokens, shallow has {n}")
                # Replacement, not addition: the previous block's prompt outputs are discarded.
                kept = (x[:, :1], p, x[:, 1 + n:]) if after_cls else (x[:, :x.shape[1] - n], p)
                x = torch.cat(kept, dim=1)
            x = block.forward_bf(x)

        pooled = self.ln_post(x[:, 0]) @ self.proj
        return (pooled, x) if return_tokens else pooled


class CLIP(nn.Module):
    """Image tower (`visual`), text Transformer and the learned temperature `logit_scale`."""

    def __init__(self, embed_dim: int, image_resolution: int,
                 vision_layers: Union[Tuple[int, int, int, int], int], vision_width: int,
                 vision_patch_size: Optional[int], context_length: int, vocab_size: int,
                 transformer_width: int, transformer_heads: int, transformer_layers: int):
        super().__init__()
        self.context_length = context_length
        self.visual: Union[ModifiedResNet, VisionTransformer]
        if isinstance(vision_layers, (tuple, list)):
            self.visual = ModifiedResNet(vision_layers, embed_dim, heads=vision_width * 32 // 64,
                                         input_resolution=image_resolution, width=vision_width)
        else:
            self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width,
                                            vision_layers, vision_width // 64, embed_dim)
        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads,
                                       attn_mask=causal_mask(context_length))
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """CLIP's initialisation scales (depth-scaled residual projections, zeroed last BN)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        if isinstance(self.visual, ModifiedResNet):
            pool = self.visual.attnpool
            std = pool.c_proj.in_features ** -0.5
            for lin in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
                nn.init.normal_(lin.weight, std=std)
            for layer in (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4):
                for block in layer:
                    nn.init.zeros_(block.bn3.weight)  # each residual branch starts as identity
        width, layers = self.transformer.width, self.transformer.layers
        proj_std = width ** -0.5 * (2 * layers) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: Tensor, prompt: Optional[VisionPrompt] = None,
                     return_tokens: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """(B, 3, R, R) -> (B, embed_dim); with return_tokens also the ViT's last-block tokens."""
        if isinstance(self.visual, ModifiedResNet):
            if prompt is not None or return_tokens:
                raise ValueError(
                    "vision prompts and return_tokens need a ViT image tower; this CLIP has a ResNet")
            return self.visual(image.to(self.dtype))
        return self.visual(image.to(self.dtype), prompt=prompt, return_tokens=return_tokens)

    def encode_text(self, text: Tensor) -> Tensor:
        """Token ids (N, context_length) -> (N, embed_dim), pooled at the EOT (largest id).

        Only positions up to the batch's last EOT are run: under the causal mask no later
        position can change an EOT output, so this is exact.
        """
        eot = text.argmax(dim=-1)
        length = int(eot.max()) + 1
        x = self.token_embedding(text[:, :length]).to(self.dtype)
        x = x + self.positional_embedding[:length].to(self.dtype)
        x = self.transformer.forward_bf(x)
        x = self.ln_final(x).to(self.dtype)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(self, image: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        """(logits_per_image (B, N), logits_per_text (N, B)) = exp(logit_scale) * cosine similarity."""
        image_features = F.normalize(self.encode_image(image), dim=-1)
        text_features = F.normalize(self.encode_text(text), dim=-1)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


def convert_weights(model: nn.Module) -> None:
    """In place: Conv/Linear/MHA weights and `text_projection`/`proj` to fp16, as OpenAI ships them.

    Embeddings, class/positional embeddings, LayerNorms, BatchNorms and logit_scale stay fp32.
    """
    def to_half(module: nn.Module) -> None:
        names: Tuple[str, ...] = ()
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            names = ("weight", "bias")
        elif isinstance(module, nn.MultiheadAttention):
            names = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                     "in_proj_bias", "bias_k", "bias_v")
        for name in names + ("text_projection", "proj"):
            tensor = getattr(module, name, None)
            if isinstance(tensor, Tensor):
                tensor.data = tensor.data.half()

    model.apply(to_half)


_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")  # extra entries of JIT files


def _count_blocks(state_dict: dict, prefix: str) -> int:
    """Number of distinct i in keys '<prefix>.<i>.*'."""
    depth = prefix.count(".") + 1
    return len({k.split(".")[depth] for k in state_dict if k.startswith(prefix + ".")})


def infer_config(state_dict: dict) -> dict:
    """The `CLIP(...)` keyword arguments implied by the tensor shapes of an OpenAI state dict."""
    sd = state_dict
    if "visual.proj" in sd:
        vision_width = sd["visual.conv1.weight"].shape[0]
        vision_layers: Union[int, Tuple[int, ...]] = _count_blocks(sd, "visual.transformer.resblocks")
        vision_patch_size: Optional[int] = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        image_resolution = vision_patch_size * grid
    else:
        vision_layers = tuple(_count_blocks(sd, f"visual.layer{b}") for b in (1, 2, 3, 4))
        vision_width = sd["visual.layer1.0.conv1.weight"].shape[0]
        grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_patch_size = None
        image_resolution = grid * 32
    transformer_width = sd["ln_final.weight"].shape[0]
    return dict(
        embed_dim=sd["text_projection"].shape[1],
        image_resolution=image_resolution,
        vision_layers=vision_layers,
        vision_width=vision_width,
        vision_patch_size=vision_patch_size,
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        transformer_width=transformer_width,
        transformer_heads=transformer_width // 64,
        transformer_layers=_count_blocks(sd, "transformer.resblocks"),
    )


def build_model(state_dict: dict, fp16: bool = True) -> CLIP:
    """OpenAI's CLIP from its state dict: fp16 weights (`convert_weights`), eval mode.

    fp16=False keeps fp32 parameters (for fp32 weights such as open_clip's, which fp16 would round).
    """
    state_dict = {k: v for k, v in state_dict.items() if k not in _NON_WEIGHT_KEYS}
    model = CLIP(**infer_config(state_dict))
    if fp16:
        convert_weights(model)
    model.load_state_dict(state_dict)
    return model.eval()
