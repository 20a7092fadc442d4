"""Text-encoder speed: CoOp prompts, forward + backward w.r.t. the context, fp32 on CPU.

Compares, in one run on a random ViT-B/16-shaped text tower (width 512, 12 layers, 8 heads, vocab
49408, context 77, embed 512):
  full-77        the plain computation CoOp's TextEncoder does (all 77 positions),
  truncated      clip.encode.encode_text(..., shared_prefix=False),
  shared-prefix  clip.encode.encode_text(...) (SOS + context encoded once).
Prints median seconds, speed-ups over full-77 and the largest relative differences of features and
context gradients from full-77 (max |a - b| / max |b|).

    python bench/text_encoder.py [--classes 100] [--ctx 16] [--repeats 3] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip.clip import _tokenizer, tokenize  # noqa: E402
from clip.encode import encode_text  # noqa: E402
from clip.model import CLIP  # noqa: E402
from clip.prompts import TextPrompt  # noqa: E402

# 70 Caltech101 names (CoOp's spelling) and 30 from OxfordPets, Flowers102, FGVCAircraft,
# StanfordCars and Food101: 1 to 9 BPE tokens (digits are one token each).
CLASS_NAMES = """face leopard motorbike accordion airplane anchor ant barrel bass beaver binocular
bonsai brain brontosaurus buddha butterfly camera cannon car_side ceiling_fan cellphone chair
chandelier cougar_body cougar_face crab crayfish crocodile crocodile_head cup dalmatian dollar_bill
dolphin dragonfly electric_guitar elephant emu euphonium ewer ferry flamingo flamingo_head garfield
gerenuk gramophone grand_piano hawksbill headphone hedgehog helicopter ibis inline_skate joshua_tree
kangaroo ketch lamp laptop llama lobster lotus mandolin mayfly menorah metronome minaret nautilus
octopus okapi pagoda panda""".split() + [
    "abyssinian", "american bulldog", "american pit bull terrier", "basset hound", "egyptian mau",
    "english cocker spaniel", "great pyrenees", "staffordshire bull terrier", "yorkshire terrier",
    "wheaten terrier", "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "707-320", "737-800",
    "A340-300", "DHC-8-100", "Falcon 2000", "MD-11", "2012 Tesla Model S Sedan",
    "2007 Ford Mustang Convertible", "1993 Volvo 240 Sedan", "eggs benedict", "french onion soup",
    "macaroni and cheese",
]


def text_tower() -> CLIP:
    """Random CLIP with ViT-B/16's text tower; the image tower is a minimal ViT (unused here)."""
    model = CLIP(embed_dim=512, image_resolution=32, vision_layers=1, vision_width=64,
                 vision_patch_size=16, context_length=77, vocab_size=49408,
                 transformer_width=512, transformer_heads=8, transformer_layers=12)
    return model.eval().requires_grad_(False)


def full_77(model: CLIP, prompts: Tensor, eot: Tensor) -> Tensor:
    """CoOp's TextEncoder: all positions, sequence-first Transformer, EOT row, projection."""
    x = prompts + model.positional_embedding.type(model.dtype)
    x = model.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
    x = model.ln_final(x).type(model.dtype)
    return x[torch.arange(x.shape[0]), eot] @ model.text_projection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=100, help="number of class prompts")
    parser.add_argument("--ctx", type=int, default=16, help="number of learned context tokens")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = text_tower()
    # A stride coprime with 100 visits every name; a few classes still mix the name lengths.
    names = [CLASS_NAMES[37 * i % len(CLASS_NAMES)].replace("_", " ") for i in range(args.classes)]
    ids = tokenize([" ".join(["X"] * args.ctx) + " " + name + "." for name in names])
    eot = ids.argmax(dim=-1)
    with torch.no_grad():
        frozen = model.token_embedding(ids)
    ctx = (0.02 * torch.randn(args.ctx, 512)).requires_grad_()
    target = torch.randn(args.classes, 512)

    def prompts() -> Tensor:
        # CoOp's layout: [SOS | ctx | class tokens "." EOT pad]
        return torch.cat([frozen[:, :1], ctx.expand(args.classes, -1, -1), frozen[:, 1 + args.ctx:]], dim=1)

    paths: Dict[str, Callable[[], Tensor]] = {
        "full-77": lambda: full_77(model, prompts(), eot),
        "truncated": lambda: encode_text(model, TextPrompt(prompts(), eot), shared_prefix=False),
        "shared-prefix": lambda: encode_text(model, TextPrompt(prompts(), eot)),
    }

    def step(path: Callable[[], Tensor]) -> Tuple[float, Tensor, Tensor]:
        start = time.perf_counter()
        features = path()
        (grad,) = torch.autograd.grad((features * target).sum(), ctx)
        return time.perf_counter() - start, features.detach(), grad

    lengths = [len(_tokenizer().encode(n)) for n in names]
    print(f"{args.classes} CoOp prompts, {args.ctx} context tokens, class names of "
          f"{min(lengths)}-{max(lengths)} BPE tokens (mean {statistics.mean(lengths):.2f}); "
          f"last EOT at {int(eot.max())}; {torch.get_num_threads()} threads (load average "
          f"{os.getloadavg()[0]:.1f}), fp32 CPU, forward + backward w.r.t. ctx, median of {args.repeats}")
    for path in paths.values():
        step(path)  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in paths}
    results: Dict[str, Tuple[Tensor, Tensor]] = {}
    for _ in range(args.repeats):  # interleaved so that drifts in machine load hit all paths alike
        for name, path in paths.items():
            seconds, features, grad = step(path)
            times[name].append(seconds)
            results[name] = (features, grad)

    ref_features, ref_grad = results["full-77"]
    ref_time = statistics.median(times["full-77"])
    print(f"{'path':<14} {'seconds':>8} {'speed-up':>9} {'feature rel diff':>17} {'grad rel diff':>14}")
    for name in paths:
        seconds = statistics.median(times[name])
        features, grad = results[name]
        feature_diff = ((features - ref_features).abs().max() / ref_features.abs().max()).item()
        grad_diff = ((grad - ref_grad).abs().max() / ref_grad.abs().max()).item()
        print(f"{name:<14} {seconds:8.3f} {ref_time / seconds:8.2f}x {feature_diff:17.2e} {grad_diff:14.2e}")


if __name__ == "__main__":
    main()
