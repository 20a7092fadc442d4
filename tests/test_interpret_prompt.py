"""interpret_prompt.py: a context set to known token embeddings is read back as those tokens."""
from __future__ import annotations

import torch

import interpret_prompt
from clip.simple_tokenizer import SimpleTokenizer
from dassl.utils import save_checkpoint

WORDS = ["photo", "dog", "flower", "satellite"]


def token_ids(words):
    tokenizer = SimpleTokenizer()
    ids = [tokenizer.encode(w) for w in words]
    assert all(len(i) == 1 for i in ids)
    return [i[0] for i in ids]


def write_context(tmp_path, state_dict):
    save_checkpoint({"state_dict": state_dict, "epoch": 1}, str(tmp_path), model_name="model.pth.tar-1")
    return str(tmp_path / "model.pth.tar-1")


def test_known_token_embeddings_are_recovered(tiny_vit, tiny_vit_path, tmp_path, capsys):
    embedding = tiny_vit.token_embedding.weight.detach()
    ids = token_ids(WORDS)
    ctx = embedding[ids].clone()
    ctx[1] += 1e-3  # near, not on, the embedding of "dog"
    path = write_context(tmp_path, {"ctx": ctx.half(), "token_prefix": torch.zeros(3, 1, 128)})
    capsys.readouterr()

    results = interpret_prompt.interpret(path, 3, tiny_vit_path)
    assert list(results) == ["ctx"]
    rows = results["ctx"]
    assert [row[0][0] for row in rows] == WORDS
    for row, vector in zip(rows, ctx.half().float()):
        expected = (embedding - vector).norm(dim=-1).sort().values[:3]
        torch.testing.assert_close(torch.tensor([dist for _, dist in row]), expected, atol=1e-5, rtol=0)
        assert row[0][1] < row[1][1] <= row[2][1]

    assert interpret_prompt.main([path, "2", "--backbone", tiny_vit_path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ctx: 4 context vectors"
    assert out[1].startswith("|   ctx | #1 token (distance)") and "#2 token (distance)" in out[1]
    assert out[3].startswith("|     1 | photo (")


def test_class_specific_and_maple_keys(tiny_vit, tiny_vit_path, tmp_path):
    embedding = tiny_vit.token_embedding.weight.detach()
    csc = embedding[token_ids(WORDS)].reshape(2, 2, -1)  # 2 classes x 2 context tokens
    path = write_context(tmp_path, {"prompt_learner.ctx": csc, "prompt_learner.proj.weight": torch.zeros(768, 128)})
    results = interpret_prompt.interpret(path, 1, tiny_vit_path)
    assert {k: [r[0][0] for r in v] for k, v in results.items()} == {
        "prompt_learner.ctx[class 0]": WORDS[:2], "prompt_learner.ctx[class 1]": WORDS[2:]}


def test_errors_are_one_line(tiny_vit_path, tmp_path, capsys):
    missing = str(tmp_path / "nope.pth.tar")
    assert interpret_prompt.main([missing, "3", "--backbone", tiny_vit_path]) == 2
    assert capsys.readouterr().err == f'error: File is not found at "{missing}"\n'
    path = write_context(tmp_path, {"ctx": torch.zeros(4, 512)})
    assert interpret_prompt.main([path, "3", "--backbone", tiny_vit_path]) == 2
    assert "the context has width 512 but the backbone's token embedding has 128" in capsys.readouterr().err
    path = write_context(tmp_path, {"meta_net.linear1.weight": torch.zeros(4, 4)})
    assert interpret_prompt.main([path, "3", "--backbone", tiny_vit_path]) == 2
    assert "no ctx entry in" in capsys.readouterr().err
