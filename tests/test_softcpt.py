"""SoftCPT: meta network and parameter counts (RN50 shapes), loss and class sampling by hand, the
suites (split files, few-shot cache, task/class subsampling), and MTCoOp / MTCoOpHard end to end
through train.py on the tiny CLIP and a three-task miniature suite."""
from __future__ import annotations

import json
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

from clip.prompts import TextPrompt

from fixtures.data_fixtures import make_cfg
from fixtures.softcpt_fixtures import SOFTCPT_OPTS
from fixtures.trainer_fixtures import repo_path, run_train

GENERAL10_SIZES = [100, 47, 10, 100, 101, 102, 37, 196, 397, 101]
VARIANTS = {  # name: (CLASS_N_CTX, CLASS_CSC, TASK_N_CTX, TASK_CSC, CSC) as in scripts/softcpt
    "NATA": (0, False, 4, False, False), "NATS": (0, False, 4, True, False),
    "CATA": (4, False, 4, False, True), "CSTA": (4, True, 4, False, True),
    "CATS": (4, False, 4, True, True), "CSTS": (4, True, 4, True, True),
}
TASK_LINE = re.compile(r"^\* task: (\d+) \((.+)\)\ttotal: ([\d,]+)\tmetric: ([\d.]+)%$", re.M)
LOSS = re.compile(r"^epoch \[\d+/\d+\] batch \[\d+/\d+\] .* loss ([\d.]+) \(", re.M)


def variant_opts(name: str, sample_rate: float = 0.0) -> list[str]:
    class_n_ctx, class_csc, task_n_ctx, task_csc, csc = VARIANTS[name]
    return ["TRAINER.MTCOOP.CLASS_N_CTX", str(class_n_ctx), "TRAINER.MTCOOP.CLASS_CSC", str(class_csc),
            "TRAINER.MTCOOP.TASK_N_CTX", str(task_n_ctx), "TRAINER.MTCOOP.TASK_CSC", str(task_csc),
            "TRAINER.MTCOOP.N_CTX", "16", "TRAINER.MTCOOP.CSC", str(csc), "TRAINER.MTCOOP.PG_TYPE", "lin",
            "TRAINER.MTCOOP.CLS_SAMPLE_RATE", str(sample_rate)]


# ---------------------------------------------------------------- model, RN50 shapes

def layout_of(tasks: list[str], names: list[list[str]]):
    from dassl.data import TaskLayout

    return TaskLayout(tuple(tasks), tuple(len(n) for n in names), ("overall_acc",) * len(tasks),
                      tuple(tuple(n) for n in names))


def rn50_shaped_clip():
    """OpenAI RN50's architecture on the meta device: shapes without weights or memory."""
    from clip.model import CLIP

    with torch.device("meta"):
        return CLIP(1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12)


@pytest.mark.parametrize("variant,expected", [
    ("NATA", 8_390_656), ("NATS", 8_388_608 + 10 * 2_048), ("CATA", 16_777_216 + 2_048 + 2_048),
    ("CSTA", 16_777_216 + 1_191 * 2_048 + 2_048), ("CATS", 16_777_216 + 2_048 + 10 * 2_048),
    ("CSTS", 16_777_216 + 1_191 * 2_048 + 10 * 2_048),
])
def test_rn50_parameter_counts_on_general10(variant, expected):
    from trainers.mtcoop import SoftCPTCLIP

    cfg = make_cfg("General10", ".", *variant_opts(variant), all_keys=True)
    names = [[f"class {t} {i}" for i in range(n)] for t, n in enumerate(GENERAL10_SIZES)]
    model = SoftCPTCLIP(cfg, layout_of([f"task {t}" for t in range(10)], names), rn50_shaped_clip())
    learned = sum(p.numel() for m in model.learned_modules() for p in m.parameters())
    assert learned == expected
    assert model.prompt_gen.proj.dtype == torch.float32
    assert sum(model.sizes) == 1191 and model.ranges[-1] == (1191 - 101, 1191)


@pytest.mark.parametrize("pg_type,csc,in_dim", [("lin", False, 1024), ("lin", True, 2048),
                                                ("linmean", True, 1024), ("lincls", True, 1024)])
def test_meta_network_shapes(pg_type, csc, in_dim):
    from trainers.mtcoop import PromptGen

    gen = PromptGen(pg_type, 1024, 16, 512, csc)
    assert gen.proj.shape == (in_dim, 16 * 512)
    rows = torch.randn(5, 2048 if csc else 1024, dtype=torch.float64)
    out = gen(rows)
    assert out.shape == (5, 16, 512) and out.dtype == torch.float64
    half = rows[:, :1024]
    if pg_type == "linmean":
        rows = (half + rows[:, 1024:]) / 2
    elif pg_type == "lincls":
        rows = half
    expected = rows @ gen.proj.double()
    # token j of a row = columns j*512..(j+1)*512-1 of the flat output
    assert torch.allclose(out[:, 3], expected[:, 3 * 512:4 * 512])


def test_meta_network_rejects_class_types_without_class_branch():
    from trainers.mtcoop import PromptGen

    with pytest.raises(ValueError, match="needs the class branch"):
        PromptGen("linmean", 1024, 16, 512, csc=False)
    with pytest.raises(ValueError, match="PG_TYPE must be one of"):
        PromptGen("", 1024, 16, 512, csc=False)


def test_text_features_match_per_task_plain_encoding(tiny_vit):
    """The shared-prefix / one-call paths give the reference's per-task features (truncated path)."""
    from clip.encode import encode_text
    from trainers.mtcoop import SoftCPTCLIP

    names = [["cat", "dog", "red panda"], ["rough", "smooth"]]
    for variant in ("NATA", "CSTS"):
        cfg = make_cfg("General10", ".", *variant_opts(variant), all_keys=True)
        torch.manual_seed(0)
        model = SoftCPTCLIP(cfg, layout_of(["pet", "texture"], names), tiny_vit)
        with torch.no_grad():
            contexts = model.generated_contexts()
            got = model.raw_text_features()
            want = torch.cat([encode_text(tiny_vit, p.prompt(ctx), shared_prefix=False)
                              for p, ctx in zip(model.prompt_learner, contexts)])
        assert got.shape == (5, tiny_vit.text_projection.shape[1])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_grouped_shared_prefix_gradients(tiny_vit):
    """Tasks of different sizes in one call (TextPrompt.group_sizes): features and gradients of
    the per-task contexts equal the plain per-task encoding."""
    from clip.encode import encode_text
    from trainers.multitask import task_prompts
    from trainers.prompting import ClassPrompts

    prompts = [ClassPrompts(tiny_vit, names, 4, "X X X X") for names in (["cat", "dog", "red panda"], ["sky"],
                                                                         ["rough", "smooth"])]
    weights = torch.randn(6, tiny_vit.text_projection.shape[1])

    def grads(grouped: bool):
        torch.manual_seed(0)
        contexts = [torch.randn(4, 128, requires_grad=True) for _ in prompts]
        if grouped:
            prompt = task_prompts(prompts, contexts)
            assert prompt.group_sizes == [3, 1, 2]
            out = encode_text(tiny_vit, prompt)
        else:
            out = torch.cat([encode_text(tiny_vit, p.prompt(c), shared_prefix=False)
                             for p, c in zip(prompts, contexts)])
        (out * weights).sum().backward()
        return out.detach(), [c.grad for c in contexts]

    (out_a, grads_a), (out_b, grads_b) = grads(True), grads(False)
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_class_sampling_step_matches_a_reference_style_computation(tiny_vit):
    """CSTS with CLS_SAMPLE_RATE: the same randperm draws, each task's chosen prompts encoded
    over all 77 positions, unchosen rows at the constant 1e-6, CE over the chosen columns."""
    from clip.encode import encode_text
    from trainers.mtcoop import SoftCPTCLIP
    from trainers.multitask import multitask_loss

    cfg = make_cfg("General10", ".", *variant_opts("CSTS", 0.5), all_keys=True)
    names = [["cat", "dog", "red panda", "owl"], ["rough", "smooth", "striped"]]
    torch.manual_seed(0)
    model = SoftCPTCLIP(cfg, layout_of(["pet", "texture"], names), tiny_vit)
    images = torch.randn(2, 3, 224, 224)
    label = torch.tensor([[0, 0, 1, 0, -1, -1, -1], [-1, -1, -1, -1, 0, 1, 0]])

    torch.manual_seed(5)
    logits, selected = model(images, label)
    loss = multitask_loss(logits, label, model.ranges, selected)

    torch.manual_seed(5)
    with torch.no_grad():
        contexts = model.generated_contexts()
        features, kept = [], torch.zeros(7, dtype=torch.bool)
        for (start, end), prompts, ctx in zip(model.ranges, model.prompt_learner, contexts):
            positive = (label[:, start:end] == 1).any(dim=0)
            neg = torch.where(~positive)[0]
            idx = torch.cat([torch.where(positive)[0], neg[torch.randperm(len(neg))[:math.ceil(len(neg) * 0.5)]]])
            full = prompts.assemble(ctx)[idx]  # all 77 positions, as the reference
            block = torch.full((end - start, tiny_vit.text_projection.shape[1]), 1e-6)
            block[idx] += encode_text(tiny_vit, TextPrompt(full, prompts.eot[idx]), shared_prefix=False)
            features.append(block)
            kept[idx + start] = True
        text = torch.cat(features)
        text = text / text.norm(dim=-1, keepdim=True)
        image = tiny_vit.encode_image(images)
        want = tiny_vit.logit_scale.exp() * (image / image.norm(dim=-1, keepdim=True)) @ text.t()
    assert torch.equal(selected, kept)
    torch.testing.assert_close(logits.detach(), want, atol=1e-4, rtol=1e-5)
    assert loss.item() == pytest.approx(hand_loss(want, label, model.ranges, kept), rel=1e-5)


# ---------------------------------------------------------------- loss and class sampling by hand

RANGES = ((0, 3), (3, 5), (5, 9))


def hand_loss(logits, label, ranges, selected=None):
    total = 0.0
    for start, end in ranges:
        for row in range(logits.shape[0]):
            lab = label[row, start:end]
            if (lab == -1).all():
                continue
            cols = [c for c in range(start, end) if selected is None or selected[c]]
            target = next(c for c in cols if label[row, c] == 1)
            z = logits[row, cols]
            total += float(torch.logsumexp(z, 0) - logits[row, target])
    return total / logits.shape[0]


def test_label_vector_and_per_task_loss_by_hand():
    from dassl.data import TaskLayout
    from trainers.multitask import multitask_loss

    layout = TaskLayout(("a", "b", "c"), (3, 2, 4), ("overall_acc",) * 3)
    label = layout.label_vectors(torch.tensor([0, 2, 2, 1]), torch.tensor([1, 3, 0, 0]))
    assert label.tolist()[1] == [-1, -1, -1, -1, -1, 0, 0, 0, 1]
    logits = torch.randn(4, 9, dtype=torch.float64)
    loss = multitask_loss(logits, label, layout.ranges)
    assert loss.item() == pytest.approx(hand_loss(logits, label, layout.ranges))
    # a task without rows in the batch contributes nothing; B stays the divisor
    assert multitask_loss(logits[:1], label[:1], layout.ranges).item() == pytest.approx(
        float(-F.log_softmax(logits[0, :3], 0)[1]))


def test_class_sampling_keeps_every_positive_and_restricts_the_loss():
    from trainers.multitask import multitask_loss, sample_classes

    label = torch.tensor([[0, 1, 0, -1, -1, -1, -1, -1, -1],
                          [-1, -1, -1, -1, -1, 0, 0, 1, 0],
                          [-1, -1, -1, -1, -1, 1, 0, 0, 0]])
    torch.manual_seed(3)
    chosen = sample_classes(label, RANGES, 0.4)
    assert chosen[0][:1].tolist() == [1] and len(chosen[0]) == 1 + math.ceil(2 * 0.4)
    assert chosen[1].numel() == math.ceil(2 * 0.4)  # task absent from the batch: all negatives
    assert chosen[2][:2].tolist() == [0, 2] and len(chosen[2]) == 2 + math.ceil(2 * 0.4)
    selected = torch.zeros(9, dtype=torch.bool)
    for idx, (start, _) in zip(chosen, RANGES):
        selected[idx + start] = True
    logits = torch.randn(3, 9, dtype=torch.float64)
    loss = multitask_loss(logits, label, RANGES, selected)
    assert loss.item() == pytest.approx(hand_loss(logits, label, RANGES, selected))


# ---------------------------------------------------------------- suites

def test_suite_split_files_fewshot_cache_and_subsampling(softcpt_data_root):
    from dassl.data import DataManager
    from dassl.data.datasets import build_dataset

    opts = ("DATASET.NUM_SHOTS", 2, "SEED", 7)
    dataset = build_dataset(make_cfg("SoftCPTMini", softcpt_data_root, *opts, all_keys=True))
    assert dataset.taskid2tname == ["satellite image", "texture", "pet"]
    assert [len(c) for c in dataset.taskid2cname] == [4, 3, 3]
    assert dataset.taskid2metric == ["overall_acc", "mean_acc", "mean_acc"]
    assert len(dataset.train_x) == 2 * 10  # K per (task, class)
    dk = os.path.join(softcpt_data_root, "eurosat", "split_dk_EuroSAT.json")
    with open(dk) as f:
        split = json.load(f)
    assert split["meta"]["taskid2tname"] == ["satellite image"] and split["train"][0][1:] == [[0], [0]]
    assert not os.path.isabs(split["train"][0][0])
    cache = os.path.join(softcpt_data_root, "softcpt_mini", "split_fewshot_mt", "shot_2-seed_7.json")
    assert os.path.isfile(cache)
    again = build_dataset(make_cfg("SoftCPTMini", softcpt_data_root, *opts, all_keys=True))
    def items(ds):
        return [(d.impath, d.label, d.task) for d in ds.train_x]

    assert items(again) == items(dataset)

    # the -1/0/1 label vectors of the loader
    dm = DataManager(make_cfg("SoftCPTMini", softcpt_data_root, *opts, all_keys=True), dataset=dataset)
    labels = torch.cat([batch["label"] for batch in dm.test_loader])
    for item, vec in zip(dataset.test, labels):
        start = [0, 4, 7][item.task[0]]
        end = start + len(dataset.taskid2cname[item.task[0]])
        assert (vec[start:end] >= 0).all() and vec[start + item.label[0]] == 1 and vec[start:end].sum() == 1
        assert (torch.cat([vec[:start], vec[end:]]) == -1).all()

    # task<i> renumbers to task 0; base/new keep the first ceil(n/2) / the rest (odd counts too)
    one = build_dataset(make_cfg("SoftCPTMini", softcpt_data_root, *opts, "DATASET.SUBSAMPLE_TASKS", "task2",
                                 "DATASET.SUBSAMPLE_CLASSES", "new", all_keys=True))
    assert one.taskid2tname == ["pet"] and one.taskid2cname == [dataset.taskid2cname[2][2:]]
    assert {(d.task[0], d.label[0]) for d in one.test} == {(0, 0)}
    base = build_dataset(make_cfg("SoftCPTMini", softcpt_data_root, *opts, "DATASET.SUBSAMPLE_TASKS", "base",
                                  "DATASET.SUBSAMPLE_CLASSES", "base", all_keys=True))
    assert base.taskid2cname == [dataset.taskid2cname[0][:2], dataset.taskid2cname[1][:2]]
    with pytest.raises(ValueError, match="SUBSAMPLE_TASKS"):
        build_dataset(make_cfg("SoftCPTMini", softcpt_data_root, *opts, "DATASET.SUBSAMPLE_TASKS", "task3",
                               all_keys=True))


def test_reference_fewshot_pickle_with_old_data_path(softcpt_data_root):
    """A reference shot_K-seed_S.pkl (DatumMT, absolute paths of another machine) is used, and
    DATALOADER.OLD_DATA_PATH / NEW_DATA_PATH point the loader at this machine's images."""
    import pickle

    from dassl.data import DataManager
    from dassl.data.datasets import DatumMT, build_dataset

    full = build_dataset(make_cfg("SoftCPTMini", softcpt_data_root, "DATASET.NUM_SHOTS", 0, all_keys=True))
    moved = [DatumMT(impath=d.impath.replace(softcpt_data_root, "/elsewhere/data"), label=d.label, task=d.task)
             for d in full.train_x[:3]]
    path = os.path.join(softcpt_data_root, "softcpt_mini", "split_fewshot_mt", "shot_3-seed_11.pkl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"train": moved, "val": moved[:1]}, f)
    cfg = make_cfg("SoftCPTMini", softcpt_data_root, "DATASET.NUM_SHOTS", 3, "SEED", 11,
                   "DATALOADER.OLD_DATA_PATH", "/elsewhere/data", "DATALOADER.NEW_DATA_PATH", softcpt_data_root,
                   "DATALOADER.TRAIN_X.BATCH_SIZE", 3, all_keys=True)
    dataset = build_dataset(cfg)
    assert [d.impath for d in dataset.train_x] == [d.impath for d in moved]
    batch = next(iter(DataManager(cfg, dataset=dataset).train_loader_x))
    assert batch["img"].shape[0] == 3 and all(p.startswith(softcpt_data_root) for p in batch["impath"])


def test_reference_split_file_and_task_name_file_are_read(tmp_path):
    from dassl.data.datasets import build_dataset
    from datasets.miniature import make_miniature

    root = str(tmp_path)
    for name, n in (("EuroSAT", 2), ("DescribableTextures", 2), ("OxfordPets", 2)):
        make_miniature(name, root, n_classes=n, n_per_class=5)
    eurosat = os.path.join(root, "eurosat")
    images = sorted(os.listdir(os.path.join(eurosat, "2750", "Forest")))
    reference = {"train": [[f"Forest/{images[0]}", [1], [0]]], "val": [[f"Forest/{images[1]}", [1], [0]]],
                 "test": [[f"Forest/{images[2]}", [1], [0]]],
                 "meta": {"taskid2cname": [["AnnualCrop", "Forest"]], "taskid2desc": [""], "taskid2type": ["sl"],
                          "taskid2tname": ["remote sensing"], "taskid2metric": ["overall_acc"]}}
    with open(os.path.join(eurosat, "split_dk_EuroSAT.json"), "w") as f:
        json.dump(reference, f)
    with open(os.path.join(root, "dtd", "task_name.txt"), "w") as f:
        f.write("surface texture\n")
    dataset = build_dataset(make_cfg("SoftCPTMini", root, "DATASET.NUM_SHOTS", 0, all_keys=True))
    assert dataset.taskid2tname == ["remote sensing", "surface texture", "pet"]
    assert dataset.taskid2cname[0] == ["Annual Crop Land", "Forest"]  # renamed after loading, as the reference
    assert [(d.label, d.task) for d in dataset.test if d.task == [0]] == [([1], [0])]


# ---------------------------------------------------------------- end to end through train.py

def train_softcpt(out: str, root: str, clip_path: str, trainer: str, opts, *flags) -> str:
    config = repo_path(f"configs/trainers/{trainer}/vit_b16_ep50.yaml")
    return run_train(out, "--seed", "1", "--trainer", trainer, "--config-file", config, *flags,
                     opts=[*SOFTCPT_OPTS, *opts], root=root, backbone=clip_path)


def task_results(log: str) -> list[tuple[int, str, float]]:
    return [(int(t), name, float(m)) for t, name, _, m in TASK_LINE.findall(log)]


@pytest.fixture(scope="module")
def nata_run(tmp_path_factory, softcpt_data_root, tiny_vit_path):
    out = str(tmp_path_factory.mktemp("nata") / "seed1")
    return out, train_softcpt(out, softcpt_data_root, tiny_vit_path, "MTCoOp", variant_opts("NATA"))


def check_trained(out: str, log: str, names: list[str]) -> None:
    results = task_results(log)
    assert [r[:2] for r in results] == [(0, "satellite image"), (1, "texture"), (2, "pet")]
    average = float(re.findall(r"^\* average: ([\d.]+)%$", log, re.M)[-1])
    assert average == pytest.approx(sum(r[2] for r in results) / 3, abs=0.01)
    assert sorted(os.listdir(out)) == sorted([*names, "log.txt", "tensorboard"])
    assert LOSS.findall(log)


def test_nata_trains_reloads_and_is_deterministic(nata_run, softcpt_data_root, tiny_vit_path, tmp_path):
    out, log = nata_run
    check_trained(out, log, ["prompt_learner", "task_prompt_learner", "prompt_gen"])
    assert "Optimizer steps per iteration: 3 " in log
    state = torch.load(os.path.join(out, "prompt_gen", "model.pth.tar-1"), weights_only=True)["state_dict"]
    assert set(state) == {"proj"} and state["proj"].shape == (128, 16 * 128)

    reloaded = train_softcpt(str(tmp_path / "eval"), softcpt_data_root, tiny_vit_path, "MTCoOp",
                             variant_opts("NATA"), "--eval-only", "--model-dir", out, "--load-epoch", "1")
    assert task_results(reloaded) == task_results(log)
    again = train_softcpt(str(tmp_path / "again"), softcpt_data_root, tiny_vit_path, "MTCoOp", variant_opts("NATA"))
    assert LOSS.findall(again) == LOSS.findall(log)


@pytest.mark.parametrize("variant,rate", [("NATS", 0.0), ("CATA", 0.5), ("CSTA", 0.0), ("CATS", 0.0),
                                          ("CSTS", 0.5)])
def test_softcpt_variants_train(variant, rate, softcpt_data_root, tiny_vit_path, tmp_path):
    out = str(tmp_path / variant)
    log = train_softcpt(out, softcpt_data_root, tiny_vit_path, "MTCoOp", variant_opts(variant, rate))
    names = ["prompt_learner", "task_prompt_learner", "prompt_gen"]
    check_trained(out, log, names + (["class_prompt_learner"] if VARIANTS[variant][4] else []))


@pytest.mark.parametrize("variant", ["NATA", "CSTS"])
def test_base_to_new_with_odd_class_counts(variant, softcpt_data_root, tiny_vit_path, tmp_path):
    base = str(tmp_path / "base")
    train_softcpt(base, softcpt_data_root, tiny_vit_path, "MTCoOp",
                  [*variant_opts(variant), "DATASET.SUBSAMPLE_CLASSES", "base"])
    new_log = train_softcpt(str(tmp_path / "new"), softcpt_data_root, tiny_vit_path, "MTCoOp",
                            [*variant_opts(variant), "DATASET.SUBSAMPLE_CLASSES", "new"],
                            "--eval-only", "--model-dir", base, "--load-epoch", "1")
    assert "# classes (texture)          1" in new_log  # DTD: 3 classes -> base 2, new 1
    assert len(task_results(new_log)) == 3


@pytest.mark.parametrize("csc,tsc,ctx_shape", [(False, False, (16, 128)), (False, True, None),
                                               (True, False, (10, 16, 128))])
def test_hard_baselines_train_and_reload(csc, tsc, ctx_shape, softcpt_data_root, tiny_vit_path, tmp_path):
    opts = ["TRAINER.MTCOOPH.N_CTX", "16", "TRAINER.MTCOOPH.CSC", str(csc), "TRAINER.MTCOOPH.TSC", str(tsc)]
    out = str(tmp_path / "hard")
    log = train_softcpt(out, softcpt_data_root, tiny_vit_path, "MTCoOpHard", opts)
    check_trained(out, log, ["prompt_learner"])
    state = torch.load(os.path.join(out, "prompt_learner", "model.pth.tar-1"), weights_only=True)["state_dict"]
    if tsc:
        assert [state[f"learners.{t}.ctx"].shape for t in range(3)] == [(16, 128)] * 3
    else:
        assert state["ctx"].shape == ctx_shape
    if csc:  # one reload: class-specific contexts are the case that must not be dropped
        reloaded = train_softcpt(str(tmp_path / "eval"), softcpt_data_root, tiny_vit_path, "MTCoOpHard", opts,
                                 "--eval-only", "--model-dir", out, "--load-epoch", "1")
        assert task_results(reloaded) == task_results(log)


# ---------------------------------------------------------------- zero-shot per task

def test_zero_shot_per_task_templates(softcpt_data_root, tiny_vit_path, tmp_path):
    flags = ("--trainer", "ZeroshotCLIP", "--config-file", repo_path("configs/trainers/ZeroShot/vit_b16.yaml"),
             "--eval-only")
    opts = [*SOFTCPT_OPTS, "DATASET.SUBSAMPLE_TASKS", "task1"]
    one = run_train(str(tmp_path / "task1"), *flags, opts=opts, root=softcpt_data_root, backbone=tiny_vit_path)
    assert "Prompts: ['banded texture.'" in one
    assert [r[:2] for r in task_results(one)] == [(0, "texture")]
    both = run_train(str(tmp_path / "all"), *flags, opts=list(SOFTCPT_OPTS), root=softcpt_data_root,
                     backbone=tiny_vit_path)
    assert "a photo of a abyssinian, a type of pet." in both
    results = task_results(both)
    assert [r[:2] for r in results] == [(0, "satellite image"), (1, "texture"), (2, "pet")]
    assert results[1][2] == task_results(one)[0][2]  # a task's score does not depend on the others


# ---------------------------------------------------------------- linear probe per task

def test_linear_probe_per_task_metrics_and_average(softcpt_data_root, tiny_vit_path, tmp_path):
    import importlib.util

    import numpy as np

    from trainers.linear_probe import accuracy

    class Fixed:
        def predict(self, features):
            return features[:, 0]

    # 3 of class 0 right, 1 of class 1 right: overall 4/5, mean per class (1 + 0.5) / 2
    split = (np.array([[0], [0], [0], [1], [0]]), np.array([0, 0, 0, 1, 1]))
    assert accuracy(Fixed(), split) == pytest.approx(80.0)
    assert accuracy(Fixed(), split, "mean_acc") == pytest.approx(75.0)

    spec = importlib.util.spec_from_file_location("feat_extractor", repo_path("scripts/lpclip/feat_extractor.py"))
    extractor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extractor)
    feature_dir = tmp_path / "feat"
    for split_name in ("train", "val", "test"):
        extractor.main(extractor.build_parser().parse_args([
            "--split", split_name, "--root", softcpt_data_root, "--seed", "1",
            "--dataset-config-file", repo_path("configs/datasets/general10.yaml"),
            "--config-file", repo_path("configs/trainers/CoOp/rn50_val.yaml"), "--output-dir", str(feature_dir),
            "--backbone", tiny_vit_path, "DATASET.NAME", "SoftCPTMini", "DATALOADER.NUM_WORKERS", "0"]))
    assert np.load(feature_dir / "SoftCPTMini" / "1" / "test.npz")["label_list"].tolist() == [0, 0, 1, 1, 2, 2]

    from trainers.linear_probe import run_multitask_protocol

    average = run_multitask_protocol("SoftCPTMini", str(feature_dir), num_step=1, num_run=1,
                                     report_dir=str(tmp_path / "report"), log_dir=str(tmp_path / "logs"),
                                     shots_list=(1,))
    with open(tmp_path / "logs" / "SoftCPTMini" / "lp_average.json") as f:
        summary = json.load(f)
    assert summary["metrics"] == ["overall_acc", "mean_acc", "mean_acc"]
    per_task = [stats["1"][0] for stats in summary["per_task"]]
    assert average[1] == pytest.approx(sum(per_task) / 3)
    with open(tmp_path / "report" / "feat_s1r1.txt") as f:
        assert f.read().splitlines()[-1] == f"SoftCPTMini, 1 Shot, average over 3 tasks: {average[1]:.2f}"


# ---------------------------------------------------------------- scripts (stub python, see test_scripts.py)

NATA_ARGS = ["general10", "rn50_ep50", "16", "0", "False", "4", "False", "16", "False", "lin", "1"]
NATA_EXP = "cnctx0_ccscFalse_tnctx4_tcscFalse_nctx16_cscFalse_typelin_ratio1"
NATA_OPTS = ["TRAINER.MTCOOP.CLASS_N_CTX", "0", "TRAINER.MTCOOP.CLASS_CSC", "False", "TRAINER.MTCOOP.TASK_N_CTX", "4",
             "TRAINER.MTCOOP.TASK_CSC", "False", "TRAINER.MTCOOP.N_CTX", "16", "TRAINER.MTCOOP.CSC", "False",
             "TRAINER.MTCOOP.PG_TYPE", "lin", "TRAINER.MTCOOP.PG_RATIO", "1", "DATASET.NUM_SHOTS", "16"]


@pytest.mark.parametrize("where", ["root", "script"])
def test_softcpt_scripts(where, tmp_path):
    from test_scripts import Repo, cmd

    repo = Repo(tmp_path)
    data = os.path.realpath(os.path.join(repo.cwd("softcpt/x.sh", where), "data"))
    out = f"output/general10/MTCoOp/rn50_ep50_16shots/{NATA_EXP}_loss/seed"
    run = repo.run("softcpt/main_mtcoop.sh", *NATA_ARGS, where=where)
    assert run.rc == 0, run.stderr
    assert run.calls == [cmd(data, s, "MTCoOp", "general10", "rn50_ep50", out + str(s), *NATA_OPTS) for s in (1, 2, 3)]
    repo.make(out + "1")
    again = repo.run("softcpt/main_mtcoop.sh", *NATA_ARGS, where=where)
    assert again.messages[0] == f"Results are available in {out}1. Skip this job" and len(again.calls) == 2

    sampled = repo.run("softcpt/main_mtcoop_cls_sample.sh", *NATA_ARGS, "0.1", where=where)
    assert sampled.calls[0][sampled.calls[0].index("--output-dir") + 1] == \
        f"outputd/general10/MTCoOp/rn50_ep50_16shots/{NATA_EXP}_csr0.1/seed1"
    assert sampled.calls[0][-2:] == ["TRAINER.MTCOOP.CLS_SAMPLE_RATE", "0.1"]

    b2n = f"output/base2new/general10/MTCoOp/rn50_ep50_16shots/{NATA_EXP}_loss"
    train = repo.run("softcpt/main_mtcoop_base2new_train.sh", *NATA_ARGS, where=where)
    assert train.calls[0] == cmd(data, 1, "MTCoOp", "general10", "rn50_ep50", f"{b2n}/base/seed1", *NATA_OPTS,
                                 "DATASET.SUBSAMPLE_CLASSES", "base")
    test = repo.run("softcpt/main_mtcoop_base2new_test.sh", *NATA_ARGS, where=where)
    assert test.calls[0] == cmd(data, 1, "MTCoOp", "general10", "rn50_ep50", f"{b2n}/new/seed1", *NATA_OPTS,
                                "DATASET.SUBSAMPLE_CLASSES", "new", model=f"{b2n}/base/seed1", epoch=50)

    hard = repo.run("softcpt/main_mtcoop_hard.sh", "plant6", "rn50_ep50", "4", "16", "False", "True", where=where)
    assert hard.calls[2] == cmd(data, 3, "MTCoOpHard", "plant6", "rn50_ep50",
                                "output/plant6/MTCoOpHard/rn50_ep50_4shots/nctx16_cscFalse_tscTrue/seed3",
                                "TRAINER.MTCOOPH.N_CTX", "16", "TRAINER.MTCOOPH.CSC", "False",
                                "TRAINER.MTCOOPH.TSC", "True", "DATASET.NUM_SHOTS", "4")

    zs = ["train.py", "--root", data, "--trainer", "ZeroshotCLIP", "--dataset-config-file",
          "configs/datasets/general10.yaml", "--config-file", "configs/trainers/ZeroShot/rn50.yaml", "--output-dir"]
    zero = repo.run("softcpt/zeroshot.sh", "general10", "rn50", "3", where=where)
    assert zero.calls == [zs + ["output/ZeroshotCLIP/rn50/general10-3", "--eval-only", "DATASET.SUBSAMPLE_TASKS",
                                "task3", "DATASET.NUM_SHOTS", "1"]]
    zero_new = repo.run("softcpt/zeroshot_base2new.sh", "general10", "rn50", "3", "new", where=where)
    assert zero_new.calls == [zs + ["output/base2new/ZeroshotCLIP/rn50/new/general10-3", "--eval-only",
                                    "DATASET.SUBSAMPLE_TASKS", "task3", "DATASET.NUM_SHOTS", "1",
                                    "DATASET.SUBSAMPLE_CLASSES", "new"]]


def test_softcpt_linearprob_script(tmp_path):
    from test_scripts import Repo

    repo = Repo(tmp_path)
    os.makedirs(os.path.join(repo.root, "configs", "datasets"))
    with open(os.path.join(repo.root, "configs", "datasets", "plant6.yaml"), "w") as f:
        f.write('DATASET:\n  NAME: "Plant6"\n')
    run = repo.run("softcpt/linearprob.sh", "plant6", "vit_b16")
    assert run.rc == 0, run.stderr
    assert [call[call.index("--split") + 1] for call in run.calls[:3]] == ["train", "val", "test"]
    assert run.calls[0][-2:] == ["--backbone", "ViT-B/16"]
    assert run.calls[3][:5] == ["scripts/lpclip/linear_probe.py", "--dataset", "Plant6", "--feature_dir",
                                "output/lpclip/vit_b16"]
    bad = repo.run("softcpt/linearprob.sh", "plant6", "rn50", "5")
    assert bad.rc == 1 and "Plant6 has no task 5" in bad.stderr
    for script in ("main_mtcoop.sh", "main_mtcoop_hard.sh", "zeroshot.sh", "linearprob.sh"):
        no_data = repo.run(f"softcpt/{script}", "plant6", "rn50", env={"DATA": None})
        assert no_data.rc != 0 and "set DATA to your datasets folder" in no_data.stderr and not no_data.calls


def test_plant6_and_fashion20_suites_on_miniatures(tmp_path):
    from dassl.data.datasets import build_dataset
    from datasets.miniature import make_miniature
    from datasets.suites import PLANT6_MEMBERS

    root = str(tmp_path)
    for member in PLANT6_MEMBERS:
        make_miniature(member.dataset, root, n_classes=2, n_per_class=4)
    plant = build_dataset(make_cfg("Plant6", root, "DATASET.NUM_SHOTS", 1, "SEED", 1, all_keys=True))
    assert plant.taskid2tname[0] == "fruit or vegetable" and len(plant.taskid2tname) == 6
    assert plant.taskid2metric == ["overall_acc"] * 6
    assert plant.taskid2cname[5] == ["apple leaf with scab disease", "apple leaf with black rot"]
    fruit_test = [d for d in plant.test if d.task == [0]]
    assert len(fruit_test) == 3 * 2 * 1  # train/test/validation folders each split 50/20/30 per class
    assert os.path.isfile(os.path.join(root, "PlantVillage", "split_dk_PlantVillage.json"))

    make_miniature("Fashion20", root, n_classes=3, n_per_class=4)
    fashion = build_dataset(make_cfg("Fashion20", root, "DATASET.NUM_SHOTS", 1, "SEED", 1,
                                     "DATASET.SUBSAMPLE_CLASSES", "base", all_keys=True))
    assert fashion.taskid2tname == ["pants_type", "pants_length", "waist_type"]
    assert fashion.taskid2cname[0] == ["jeans", "leggings"] and fashion.taskid2metric == ["mean_acc"] * 3
    assert fashion.taskid2template[2] == "a photo of {}, a type of pants."
    with open(os.path.join(root, "fashion20", "split_dk_Fashion20.json")) as f:
        split = json.load(f)
    assert sum(len(split[s]) for s in ("train", "val", "test")) == 3 * 3 * 4
    one = build_dataset(make_cfg("Fashion20", root, "DATASET.NUM_SHOTS", 1, "SEED", 1,
                                 "DATASET.SUBSAMPLE_TASKS", "task1", all_keys=True))
    assert one.taskid2tname == ["pants_length"] and {d.task[0] for d in one.test} == {0}


@pytest.mark.parametrize("one_step", [False, True])
def test_optimizer_steps_per_iteration(one_step, softcpt_data_root, tiny_vit_path, tmp_path):
    """The reference registers 3 names (NATA; CATA with a frozen class context) on one SGD
    optimizer: 3 steps with one gradient; ONE_STEP_PER_ITER: one."""
    from dassl.engine import build_trainer

    variant = variant_opts("CATA") + ["TRAINER.MTCOOP.FREEZE_CLS_PROMPT", "1"] if one_step else variant_opts("NATA")
    cfg = make_cfg("SoftCPTMini", softcpt_data_root, *SOFTCPT_OPTS[2:], *variant,
                   "MODEL.BACKBONE.NAME", tiny_vit_path, "OUTPUT_DIR", str(tmp_path), "OPTIM.WARMUP_EPOCH", "0",
                   "TRAINER.MTCOOP.ONE_STEP_PER_ITER", str(one_step), "TRAINER.NAME", "MTCoOp",
                   config_files=[repo_path("configs/trainers/MTCoOp/vit_b16_ep50.yaml")], all_keys=True)
    trainer = build_trainer(cfg)
    assert trainer.get_model_names() == ["prompt_learner", "task_prompt_learner", "prompt_gen"]
    if one_step:  # the frozen class context is neither trained nor registered
        class_ctx = trainer.model.class_prompt_learner.ctx
        assert not class_ctx.requires_grad
        class_ctx_before = class_ctx.detach().clone()
    trainer.set_model_mode("train")
    trainer.batch_idx, trainer.num_batches = 0, 2
    proj = trainer.model.prompt_gen.proj
    before = proj.detach().clone()
    trainer.forward_backward(next(iter(trainer.train_loader_x)))
    expected = before.clone().requires_grad_()
    sgd = torch.optim.SGD([expected], lr=0.002, momentum=0.9, weight_decay=5e-4)
    expected.grad = proj.grad.clone()
    for _ in range(1 if one_step else 3):
        sgd.step()
    torch.testing.assert_close(proj.detach(), expected.detach(), rtol=0, atol=1e-7)
    assert not torch.allclose(proj.detach(), before, rtol=0, atol=1e-7)
    if one_step:
        assert torch.equal(class_ctx.detach(), class_ctx_before)


def test_single_task_dataset_runs_as_a_suite_of_one_task(coop_data_root, tiny_vit_path, tmp_path):
    """As the reference's member datasets: EuroSAT alone is a one-task suite (cuda_check runs so)."""
    log = run_train(str(tmp_path / "eurosat"), "--seed", "1", "--trainer", "MTCoOp", "--config-file",
                    repo_path("configs/trainers/MTCoOp/vit_b16_ep50.yaml"),
                    opts=[*SOFTCPT_OPTS[2:], *variant_opts("NATA"), "DATASET.NAME", "EuroSAT"],
                    root=coop_data_root, backbone=tiny_vit_path)
    assert [r[:2] for r in task_results(log)] == [(0, "satellite image of land use")]
