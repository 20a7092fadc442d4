"""clip/clip.py: loading both OpenAI file kinds, offline lookup, checksums, atomic downloads."""
import hashlib
import io
import os
import re
import shutil
import urllib.error

import pytest
import torch
from PIL import Image

import clip
from clip import clip as clip_module
from clip.clip import ClipWeightsError, load_state_dict_file
from clip.testing import write_tiny_checkpoint


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails as it does offline."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(clip_module.urllib.request, "urlopen", refuse)


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("CLIP_WEIGHTS_DIR", str(folder))
    return folder


class _Response(io.BytesIO):
    """What urlopen returns, served from memory; checks that nothing is written to the target early."""

    def __init__(self, data, target):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.target = target
        self.parts_seen = []

    def read(self, *args):
        assert not os.path.exists(self.target)  # the target appears only once verified
        self.parts_seen += [n for n in os.listdir(os.path.dirname(self.target)) if n.endswith(".part")]
        return super().read(*args)


def _serve(monkeypatch, data, target):
    response = _Response(data, str(target))
    calls = []

    def urlopen(url, *args, **kwargs):
        calls.append(url)
        return response

    monkeypatch.setattr(clip_module.urllib.request, "urlopen", urlopen)
    return response, calls


def test_import_surface():
    from clip import clip as module
    from clip.simple_tokenizer import SimpleTokenizer as _Tokenizer  # noqa: F401

    assert module.load is clip.load and module.tokenize is clip.tokenize
    assert module.available_models() == list(module._MODELS)
    assert set(module._MODELS) == {"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32",
                                   "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"}
    for name, url in module._MODELS.items():
        assert url.startswith("https://openaipublic.azureedge.net/clip/models/")
        sha, filename = url.split("/")[-2:]
        assert len(sha) == 64 and int(sha, 16) >= 0
        assert filename == name.replace("/", "-").replace("@", "-") + ".pt"
    assert callable(module._download)


@pytest.mark.parametrize("jit", [False, True])
def test_plain_and_torchscript_files_load(tmp_path, tiny_vit_path, tiny_vit, jit):
    path = write_tiny_checkpoint(str(tmp_path / "tiny.pt"), jit=jit) if jit else tiny_vit_path
    model, preprocess = clip.load(path, device="cpu")
    assert not model.training and model.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for k, v in tiny_vit.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    image = preprocess(Image.new("RGB", (300, 200), (255, 0, 0)))
    assert image.shape == (3, 224, 224)
    assert torch.allclose(image[0], torch.tensor((1 - 0.48145466) / 0.26862954))
    with torch.no_grad():
        assert model.encode_image(image[None]).shape == (1, model.text_projection.shape[1])


def test_torchscript_state_dict_has_openai_extras(tmp_path):
    path = write_tiny_checkpoint(str(tmp_path / "rn.pt"), arch="RN", jit=True)
    sd = load_state_dict_file(path)
    assert {"input_resolution", "context_length", "vocab_size", "visual.attnpool.c_proj.weight"} <= set(sd)
    model, _ = clip.load(path, device="cpu")
    assert model.visual.input_resolution == 224


def test_not_a_weights_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="neither a TorchScript archive nor a state dict"):
        load_state_dict_file(str(path))


def test_jit_true_is_rejected(tiny_vit_path):
    with pytest.raises(NotImplementedError, match="jit=True"):
        clip.load(tiny_vit_path, device="cpu", jit=True)


def test_unknown_model_name(no_network):
    with pytest.raises(RuntimeError, match="available models") as info:
        clip.load("ViT-H/99", device="cpu")
    assert "ViT-B/16" in str(info.value)


def test_missing_file_without_network(weights_dir, no_network):
    with pytest.raises(ClipWeightsError) as info:
        clip.load("ViT-B/16", device="cpu")
    message = str(info.value)
    assert "ViT-B-16.pt" in message and str(weights_dir) in message
    assert "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f" in message
    assert os.listdir(weights_dir) == []  # no temp file left behind


def test_wrong_checksum(weights_dir, no_network):
    (weights_dir / "ViT-B-16.pt").write_bytes(b"a truncated or foreign file")
    with pytest.raises(ClipWeightsError) as info:
        clip.load("ViT-B/16", device="cpu")
    message = str(info.value)
    assert "ViT-B-16.pt" in message and str(weights_dir) in message
    assert "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f" in message
    assert (weights_dir / "ViT-B-16.pt").exists()  # never deleted behind the user's back


def test_load_by_name_from_weights_dir(weights_dir, tiny_vit_path, no_network, monkeypatch, tmp_path):
    sha = _sha256(tiny_vit_path)
    monkeypatch.setitem(clip_module._MODELS, "Tiny", f"https://example.invalid/{sha}/tiny-vit.pt")
    shutil.copy(tiny_vit_path, weights_dir / "tiny-vit.pt")
    model, _ = clip.load("Tiny", device="cpu")
    assert model.dtype == torch.float32
    # download_root overrides $CLIP_WEIGHTS_DIR.
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ClipWeightsError, match=re.escape(str(other))):
        clip.load("Tiny", device="cpu", download_root=str(other))


def test_checksum_is_cached_but_changes_are_detected(weights_dir, monkeypatch):
    data = b"weights v1"
    url = f"https://example.invalid/{hashlib.sha256(data).hexdigest()}/w.pt"
    path = weights_dir / "w.pt"
    path.write_bytes(data)
    calls = []
    real = clip_module._sha256
    monkeypatch.setattr(clip_module, "_sha256", lambda p: calls.append(p) or real(p))
    assert clip_module._download(url, str(weights_dir)) == str(path)
    assert clip_module._download(url, str(weights_dir)) == str(path)
    assert len(calls) == 1
    path.write_bytes(b"weights v2, replaced")
    with pytest.raises(ClipWeightsError, match="expected"):
        clip_module._download(url, str(weights_dir))


def test_atomic_download(weights_dir, monkeypatch):
    data = os.urandom(3 << 20)  # several chunks
    url = f"https://example.invalid/{hashlib.sha256(data).hexdigest()}/model.pt"
    target = weights_dir / "model.pt"
    response, calls = _serve(monkeypatch, data, target)
    assert clip_module._download(url, str(weights_dir)) == str(target)
    assert calls == [url]
    assert target.read_bytes() == data
    assert response.parts_seen and all(n.startswith(".model.pt.") for n in response.parts_seen)
    assert os.listdir(weights_dir) == ["model.pt"]
    # Present now: no second download.
    monkeypatch.setattr(clip_module.urllib.request, "urlopen", None)
    assert clip_module._download(url, str(weights_dir)) == str(target)


def test_corrupt_download_is_discarded(weights_dir, monkeypatch):
    url = f"https://example.invalid/{hashlib.sha256(b'good').hexdigest()}/model.pt"
    _serve(monkeypatch, b"bad bytes", weights_dir / "model.pt")
    with pytest.raises(ClipWeightsError, match="expected"):
        clip_module._download(url, str(weights_dir))
    assert os.listdir(weights_dir) == []


def test_download_root_defaults_to_weights_dir(weights_dir, monkeypatch):
    """CoOp calls clip._download(url) with the URL only."""
    data = b"some weights"
    url = f"https://example.invalid/{hashlib.sha256(data).hexdigest()}/w.pt"
    _serve(monkeypatch, data, weights_dir / "w.pt")
    assert clip_module._download(url) == str(weights_dir / "w.pt")


def test_default_weights_dir(monkeypatch):
    monkeypatch.delenv("CLIP_WEIGHTS_DIR", raising=False)
    assert clip_module.weights_dir() == os.path.expanduser("~/.cache/clip")
    monkeypatch.setenv("CLIP_WEIGHTS_DIR", "/somewhere")
    assert clip_module.weights_dir() == "/somewhere"
    assert clip_module.weights_dir("/root_arg") == "/root_arg"
