"""Loading OpenAI CLIP weights (offline first, checksum-verified) and tokenizing text.

Weights are looked up by file name (the URL's basename) in `download_root`, else
`$CLIP_WEIGHTS_DIR`, else ~/.cache/clip, and downloaded only when absent. Every file is checked
against the SHA256 that OpenAI's URLs carry as their last directory.
`jit=True` (OpenAI's TorchScript model) is not supported: the model is always rebuilt from the
state dict, which is what prompt learning needs.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import uuid
import warnings
from functools import lru_cache
from typing import Callable, Dict, List, Tuple, Union

import torch
from PIL import Image
from torch import Tensor

from dassl.cli import UserError

from .model import CLIP, build_model, convert_weights
from .simple_tokenizer import SimpleTokenizer

__all__ = ["available_models", "load", "tokenize", "ClipWeightsError"]

_BASE = "https://openaipublic.azureedge.net/clip/models"
_MODELS: Dict[str, str] = {
    "RN50": f"{_BASE}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": f"{_BASE}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": f"{_BASE}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    "RN50x16": f"{_BASE}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
    "RN50x64": f"{_BASE}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
    "ViT-B/32": f"{_BASE}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": f"{_BASE}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": f"{_BASE}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": f"{_BASE}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
_CHUNK = 1 << 20


class ClipWeightsError(UserError, RuntimeError):
    """A weights file is missing (and cannot be downloaded), unreadable, or not CLIP weights."""


def available_models() -> List[str]:
    """Names accepted by `load` besides file paths."""
    return list(_MODELS)


def weights_dir(download_root: Union[str, None] = None) -> str:
    """Folder searched (and downloaded into): download_root, $CLIP_WEIGHTS_DIR, ~/.cache/clip."""
    root = download_root or os.environ.get("CLIP_WEIGHTS_DIR") or os.path.join("~", ".cache", "clip")
    return os.path.expanduser(root)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Digests already computed in this process, keyed by what changes when the file is replaced:
# hashing a ViT-L file takes seconds, and a file with the same identity, size and mtime is unchanged.
_DIGESTS: Dict[Tuple[str, int, int, int], str] = {}


def _file_sha256(path: str) -> str:
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _sha256(path)
    return _DIGESTS[key]


def _weights_error(problem: str, filename: str, expected: str, root: str) -> ClipWeightsError:
    return ClipWeightsError(
        f"{problem}. Put the file {filename} (SHA256 {expected}) into {root} "
        f"(or point $CLIP_WEIGHTS_DIR at the folder holding it)."
    )


def _download(url: str, root: Union[str, None] = None) -> str:
    """Path of the verified file for `url` in `root` (default `weights_dir()`), downloaded if absent.

    The download goes to a temporary file in `root` (hashed while written) that replaces the
    target only once its checksum is right, so an interrupted download never leaves a bad file.
    """
    root = weights_dir(root)
    os.makedirs(root, exist_ok=True)
    filename = os.path.basename(url)
    expected = url.split("/")[-2]
    target = os.path.join(root, filename)

    if os.path.exists(target):
        if not os.path.isfile(target):
            raise _weights_error(f"{target} exists and is not a regular file", filename, expected, root)
        actual = _file_sha256(target)
        if actual != expected:
            raise _weights_error(
                f"{target} has SHA256 {actual}, expected {expected} (corrupt or another file; delete it "
                f"to download it again)", filename, expected, root)
        return target

    from tqdm import tqdm  # only needed when downloading

    # Same folder, so os.replace is atomic; a unique name, so concurrent downloads do not collide.
    tmp = os.path.join(root, f".{filename}.{uuid.uuid4().hex}.part")
    try:
        digest = hashlib.sha256()
        with open(tmp, "xb") as out, urllib.request.urlopen(url) as source:
            total = int(source.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="iB", unit_scale=True, unit_divisor=1024, desc=filename) as bar:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != expected:
            raise _weights_error(
                f"the download of {url} has SHA256 {digest.hexdigest()}, expected {expected}",
                filename, expected, root)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as e:
        raise _weights_error(f"{target} is missing and could not be downloaded ({e})",
                             filename, expected, root) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def load_state_dict_file(path: str) -> Dict[str, Tensor]:
    """The state dict in an OpenAI weights file: a TorchScript archive or a plain state dict."""
    with open(path, "rb") as f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                return torch.jit.load(f, map_location="cpu").state_dict()
        except RuntimeError:
            pass
        f.seek(0)  # the TorchScript attempt moved the file position
        try:
            state_dict = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ClipWeightsError(
                f"{path} is neither a TorchScript archive nor a state dict (truncated or another "
                f"kind of file?): {' '.join(str(e).split())}") from e
    if not isinstance(state_dict, dict):
        raise ClipWeightsError(f"{path} holds a {type(state_dict).__name__}, not a state dict")
    return state_dict


def build_model_from_file(path: str) -> CLIP:
    """`build_model` on the weights in `path`; a file that is not CLIP weights is one clear error."""
    state_dict = load_state_dict_file(path)
    try:
        return build_model(state_dict)
    except (KeyError, RuntimeError, ValueError, IndexError) as e:  # missing keys, shape mismatches
        raise ClipWeightsError(
            f"{path} is not a CLIP checkpoint in OpenAI's format ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:300]})") from e


def _convert_image_to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def _transform(n_px: int, mean: Tuple[float, ...] = MEAN, std: Tuple[float, ...] = STD) -> Callable:
    """PIL image -> normalised (3, n_px, n_px) tensor, as CLIP was trained."""
    # Imported here so that `import clip` stays light.
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([
        Resize(n_px, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(n_px),
        _convert_image_to_rgb,
        ToTensor(),
        Normalize(mean, std),
    ])


def load(
    name_or_path: str,
    device: Union[str, torch.device] = "cuda" if torch.cuda.is_available() else "cpu",
    jit: bool = False,
    download_root: Union[str, None] = None,
) -> Tuple[CLIP, Callable]:
    """(model, preprocess) for an OpenAI model name (see `available_models`) or a weights file.

    The model is in eval mode; fp16 as OpenAI ships it, except on CPU where it is fp32.
    """
    if jit:
        raise NotImplementedError(
            "jit=True is not supported: this CLIP is always rebuilt from the state dict")
    if name_or_path.startswith("open_clip:"):
        return _load_open_clip(name_or_path, device, download_root)
    if name_or_path in _MODELS:
        path = _download(_MODELS[name_or_path], weights_dir(download_root))
    elif os.path.isfile(os.path.expanduser(name_or_path)):
        path = os.path.expanduser(name_or_path)
    else:
        raise ClipWeightsError(
            f"Model {name_or_path} not found; available models = {available_models()}, a weights file, "
            "or open_clip:ARCH/PRETRAINED")

    model = build_model_from_file(path).to(device)
    if torch.device(device).type == "cpu":
        model.float()  # fp16 matmuls on CPU are slow or unsupported
    return model, _transform(model.visual.input_resolution)


def _load_open_clip(name: str, device: Union[str, torch.device], cache_dir: Union[str, None]
                    ) -> Tuple[CLIP, Callable]:
    """`load` for "open_clip:ARCH/PRETRAINED" (see clip/openclip_weights.py): fp32 on CPU, fp16 elsewhere."""
    from .openclip_weights import build_open_clip_model

    model, preprocess = build_open_clip_model(name, cache_dir)
    if torch.device(device).type != "cpu":
        convert_weights(model)  # as OpenAI's models are loaded
    mean, std = tuple(preprocess.get("mean", MEAN)), tuple(preprocess.get("std", STD))
    if (mean, std) != (MEAN, STD):
        print(f"Note: {name} was trained with image mean {mean} and std {std}: set INPUT.PIXEL_MEAN "
              f"{list(mean)} and INPUT.PIXEL_STD {list(std)}")
    return model.to(device), _transform(model.visual.input_resolution, mean, std)


@lru_cache()
def _tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer()  # built on first use: reading the merges takes a moment


def tokenize(texts: Union[str, List[str]], context_length: int = 77, truncate: bool = False) -> Tensor:
    """(len(texts), context_length) int tensor: [SOT, tokens..., EOT, 0...] per text.

    A text longer than the context raises RuntimeError unless `truncate`, which cuts it and
    keeps EOT as the last token.
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = _tokenizer()
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    result = torch.zeros(len(texts), context_length, dtype=torch.int)
    for i, text in enumerate(texts):
        ids = [sot] + tok.encode(text) + [eot]
        if len(ids) > context_length:
            if not truncate:
                raise RuntimeError(f"Input {text} is too long for context length {context_length}")
            ids = ids[:context_length]
            ids[-1] = eot
        result[i, :len(ids)] = torch.tensor(ids, dtype=torch.int)
    return result
