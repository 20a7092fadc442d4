"""dassl.engine and dassl.utils: lifecycle, hooks, log line, scalars, registry, meters, tools."""
import json
import os
import re
import subprocess
import sys
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from dassl.config import get_cfg_default
from dassl.engine import TRAINER_REGISTRY, SimpleNet, TrainerBase, TrainerX, TrainerXU, build_trainer
from dassl.evaluation import build_evaluator
from dassl.metrics import compute_accuracy
from dassl.modeling import BACKBONE_REGISTRY, Backbone
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import (
    AverageMeter, Logger, MetricMeter, Registry, UnavailableError, check_availability, check_isfile,
    count_num_param, get_most_similar_str_to_a_from_b, init_network_weights, listdir_nohidden,
    mkdir_if_missing, open_all_layers, open_specified_layers, read_image, read_json, set_random_seed,
    setup_logger, tolist_if_not, write_json,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_LINE = re.compile(
    r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] time \d+\.\d{3} \(\d+\.\d{3}\) "
    r"data \d+\.\d{3} \(\d+\.\d{3}\) loss \d+\.\d{4} \(\d+\.\d{4}\) acc \d+\.\d{4} \(\d+\.\d{4}\) "
    r"lr (\d\.\d{4}e[-+]\d{2}) eta \d+:\d{2}:\d{2}$"
)


class DictData(Dataset):
    """Items shaped like DatasetWrapper's: img, label, domain, impath, index."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.arange(n) % 3

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"img": self.x[i], "label": self.y[i], "domain": 0, "impath": f"{i}.jpg", "index": i}


class ToyTrainer(TrainerX):
    """Linear classifier over in-memory data; steps the LR at the last batch, as CoOp does."""

    def build_data_loader(self):
        self.train_loader_x = DataLoader(DictData(12, 0), batch_size=4, shuffle=True, drop_last=True)
        self.train_loader_u = None
        self.val_loader = DataLoader(DictData(6, 1), batch_size=4)
        self.test_loader = DataLoader(DictData(6, 2), batch_size=4)
        self.num_classes = 3
        self.num_source_domains = 1
        self.lab2cname = {0: "a", 1: "b", 2: "c"}

    def build_model(self):
        self.model = nn.Linear(4, 3)
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def forward_backward(self, batch):
        x, y, _ = self.parse_batch_train(batch)
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": compute_accuracy(out, y)[0].item()}


TRAINER_REGISTRY.register(type("EngineTestToyTrainer", (ToyTrainer,), {}))


def toy_cfg(tmp_path, *opts):
    cfg = get_cfg_default()
    cfg.merge_from_list([
        "OUTPUT_DIR", str(tmp_path / "out"), "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002",
        "OPTIM.MAX_EPOCH", "2", "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", "1",
        "OPTIM.WARMUP_TYPE", "constant", *opts,
    ])
    return cfg


def test_training_output_log_lines_and_layout(tmp_path, capsys):
    set_random_seed(0)
    trainer = ToyTrainer(toy_cfg(tmp_path))
    trainer.train()
    lines = capsys.readouterr().out.splitlines()
    out = str(tmp_path / "out")

    epoch_lines = [line for line in lines if line.startswith("epoch [")]
    parsed = [LOG_LINE.match(line) for line in epoch_lines]
    assert all(parsed), epoch_lines
    assert [m.group(1, 3) for m in parsed] == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "1"), ("2", "2"), ("2", "3")]
    # The scheduler steps inside the last batch, so that line already shows the next epoch's lr.
    assert [m.group(5) for m in parsed] == ["1.0000e-05", "1.0000e-05", "2.0000e-03",
                                            "2.0000e-03", "2.0000e-03", "1.0000e-03"]

    assert lines[:3] == ["Loading evaluator: Classification", "No checkpoint found, train from scratch",
                         f"Initialize tensorboard (log_dir={out}/tensorboard)"]
    tail = lines[lines.index(epoch_lines[-1]) + 1:]
    assert tail[:5] == [f"Checkpoint saved to {out}/model/model.pth.tar-2", "Finish training",
                        "Deploy the last-epoch model", "Evaluate on the *test* set", "=> result"]
    assert re.fullmatch(r"Elapsed: 0:00:0\d", tail[-1])
    assert sorted(os.listdir(f"{out}/model")) == ["checkpoint", "model.pth.tar-2"]
    assert open(f"{out}/model/checkpoint").read() == "model.pth.tar-2\n"


def test_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    set_random_seed(0)
    ToyTrainer(toy_cfg(tmp_path, "TEST.PER_CLASS_RESULT", "True")).train()
    events = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"train/loss", "train/acc", "train/lr", "test/accuracy", "test/error_rate",
                    "test/macro_f1", "test/perclass_accuracy"}
    assert [e.step for e in events.Scalars("train/lr")] == list(range(6))
    assert [e.value for e in events.Scalars("train/lr")] == pytest.approx([1e-5, 1e-5, 2e-3, 2e-3, 2e-3, 1e-3])
    assert [e.step for e in events.Scalars("test/accuracy")] == [1]


def test_best_val_flow(tmp_path, capsys):
    set_random_seed(0)
    trainer = ToyTrainer(toy_cfg(tmp_path, "TEST.FINAL_MODEL", "best_val", "OPTIM.MAX_EPOCH", "3"))
    trainer.train()
    out = capsys.readouterr().out
    model_dir = tmp_path / "out" / "model"
    assert out.count("Evaluate on the *val* set") == 3
    assert "Deploy the model with the best val performance" in out
    best = torch.load(model_dir / "model-best.pth.tar", weights_only=True)
    assert type(best["val_result"]) is float and best["val_result"] == trainer.best_result
    assert re.search(rf"Load {model_dir}/model-best.pth.tar to model \(epoch={best['epoch']}, "
                     rf"val_result={best['val_result']:.1f}\)", out)
    assert out.index("Deploy the model") < out.index("Evaluate on the *test* set")
    assert (model_dir / "checkpoint").read_text() == "model.pth.tar-3\n"


def test_hooks_order_and_range_after_before_train(tmp_path):
    calls = []

    class Recording(ToyTrainer):
        def before_train(self):
            calls.append("before_train")
            self.start_epoch = 1  # as resume does

        def before_epoch(self):
            calls.append(f"before_epoch {self.epoch}")

        def run_epoch(self):
            calls.append(f"run_epoch {self.epoch}")

        def after_epoch(self):
            calls.append(f"after_epoch {self.epoch}")

        def after_train(self):
            calls.append("after_train")

    Recording(toy_cfg(tmp_path, "OPTIM.MAX_EPOCH", "3")).train()
    assert calls == ["before_train", "before_epoch 1", "run_epoch 1", "after_epoch 1",
                     "before_epoch 2", "run_epoch 2", "after_epoch 2", "after_train"]


def test_test_split_selection(tmp_path, capsys):
    trainer = ToyTrainer(toy_cfg(tmp_path))
    trainer.test(split="val")
    trainer.val_loader = None
    trainer.test(split="val")
    out = capsys.readouterr().out
    assert out.count("Evaluate on the *val* set") == 1 and out.count("Evaluate on the *test* set") == 1
    assert trainer._writer is None  # no writer outside training: write_scalar is a no-op


def test_register_model_rules():
    class Early(TrainerBase):
        def __init__(self):
            self.register_model("model", nn.Linear(1, 1))

    with pytest.raises(AttributeError, match="Cannot assign model before super"):
        Early()
    base = TrainerBase()
    base.register_model("a", nn.Linear(1, 1))
    with pytest.raises(AssertionError, match="Found duplicate model names"):
        base.register_model("a", nn.Linear(1, 1))
    base.register_model("b", nn.Linear(1, 1))
    assert base.get_model_names() == ["a", "b"] and base.get_model_names("b") == ["b"]
    with pytest.raises(AssertionError):
        base.get_model_names("c")
    base.set_model_mode("eval")
    assert not base._models["a"].training
    with pytest.raises(KeyError):
        base.set_model_mode("predict")
    for call in (base.run_epoch, base.test, lambda: base.parse_batch_train(None),
                 lambda: base.parse_batch_test(None), lambda: base.forward_backward(None),
                 lambda: base.model_inference(None)):
        with pytest.raises(NotImplementedError):
            call()


def test_shared_optimizer_and_scheduler_step_once_per_name():
    class Counting:
        def __init__(self):
            self.steps = self.zeros = 0

        def step(self):
            self.steps += 1

        def zero_grad(self):
            self.zeros += 1

    optim, sched = Counting(), Counting()
    base = TrainerBase()
    layer = nn.Linear(1, 1)
    for name in ("a", "b", "c"):
        base.register_model(name, layer, optim, sched)
    base.register_model("frozen", nn.Linear(1, 1))
    base.model_backward_and_update(layer(torch.ones(1)).sum())
    base.update_lr()
    assert (optim.zeros, optim.steps, sched.steps) == (3, 3, 3)
    with pytest.raises(FloatingPointError, match="Loss is infinite or NaN!"):
        base.model_backward(torch.tensor(float("nan")))


def test_load_model_messages(tmp_path, capsys):
    trainer = ToyTrainer(toy_cfg(tmp_path))
    trainer.load_model("")
    assert "Note that load_model() is skipped as no pretrained model is given" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="No model at"):
        trainer.load_model(str(tmp_path), epoch=5)
    trainer.save_model(4, str(tmp_path))
    trainer.load_model(str(tmp_path), epoch=5)
    assert f"Load {tmp_path}/model/model.pth.tar-5 to model (epoch=5, val_result=None)" in capsys.readouterr().out


def test_softcpt_style_init_without_super(tmp_path, capsys):
    """SoftCPT sets exactly these attributes itself; the engine must need nothing else."""

    class NoSuper(ToyTrainer):
        def __init__(self, cfg):
            self._models, self._optims, self._scheds = OrderedDict(), OrderedDict(), OrderedDict()
            self._writer = None
            self.device = torch.device("cpu")
            self.start_epoch = self.epoch = 0
            self.max_epoch = cfg.OPTIM.MAX_EPOCH
            self.output_dir = cfg.OUTPUT_DIR
            self.cfg = cfg
            self.evaluator = build_evaluator(cfg)
            self.best_result = -float("inf")
            self.check_cfg(cfg)
            self.build_data_loader()
            self.build_model()

    NoSuper(toy_cfg(tmp_path, "TEST.FINAL_MODEL", "best_val")).train()
    assert "* accuracy:" in capsys.readouterr().out


def test_trainer_xu_restarts_the_shorter_loader(tmp_path):
    seen = []

    class XU(TrainerXU):
        build_data_loader = ToyTrainer.build_data_loader
        build_model = ToyTrainer.build_model

        def forward_backward(self, batch_x, batch_u):
            x, y, u = self.parse_batch_train(batch_x, batch_u)
            seen.append(len(u))
            loss = F.cross_entropy(self.model(x), y) + self.model(u).mean() * 0
            self.model_backward_and_update(loss)
            return {"loss": loss.item()}

    trainer = XU(toy_cfg(tmp_path, "OPTIM.MAX_EPOCH", "1", "TEST.NO_TEST", "True"))
    trainer.train_loader_u = DataLoader(DictData(6, 3), batch_size=4)  # 2 batches: 4, 2
    trainer.train()
    assert seen == [4, 2, 4]
    trainer.cfg.defrost()
    trainer.cfg.TRAIN.COUNT_ITER = "smaller_one"
    seen.clear()
    trainer.run_epoch()
    assert seen == [4, 2]
    trainer.cfg.TRAIN.COUNT_ITER = "both"
    with pytest.raises(ValueError, match="COUNT_ITER"):
        trainer.run_epoch()


@BACKBONE_REGISTRY.register()
class engine_test_backbone(Backbone):  # noqa: N801
    def __init__(self, pretrained=True):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self._out_features = 5

    def forward(self, x):
        return self.fc(x)


class DefaultModelTrainer(ToyTrainer):
    build_model = TrainerX.build_model


def test_default_build_model_simplenet_with_head_and_init_weights(tmp_path, capsys):
    cfg = toy_cfg(tmp_path, "MODEL.BACKBONE.NAME", "engine_test_backbone", "MODEL.HEAD.NAME", "mlp",
                  "MODEL.HEAD.HIDDEN_LAYERS", "[6]")
    trainer = DefaultModelTrainer(cfg)
    assert isinstance(trainer.model, SimpleNet) and trainer.model.fdim == 6
    assert trainer.get_model_names() == ["model"]
    n_params = (4 * 5 + 5) + (5 * 6 + 6 + 2 * 6) + (6 * 3 + 3)
    out = capsys.readouterr().out
    assert "Backbone: engine_test_backbone" in out and "Head: mlp" in out and f"# params: {n_params:,}" in out
    logits, feats = trainer.model(torch.randn(2, 4), return_feature=True)
    assert logits.shape == (2, 3) and feats.shape == (2, 6)

    trainer.save_model(0, str(tmp_path / "init"))
    cfg.MODEL.INIT_WEIGHTS = str(tmp_path / "init" / "model" / "model.pth.tar-1")
    again = DefaultModelTrainer(cfg)
    assert torch.equal(again.model.classifier.weight, trainer.model.classifier.weight)
    assert "Successfully loaded pretrained weights from" in capsys.readouterr().out


def test_build_trainer(tmp_path, capsys):
    cfg = toy_cfg(tmp_path)
    cfg.TRAINER.NAME = "EngineTestToyTrainr"
    with pytest.raises(UnavailableError, match=r"do you mean \[EngineTestToyTrainer\]"):
        build_trainer(cfg)
    cfg.TRAINER.NAME = "EngineTestToyTrainer"
    assert isinstance(build_trainer(cfg), ToyTrainer)
    assert capsys.readouterr().out.startswith("Loading trainer: EngineTestToyTrainer\n")


def test_imports_are_light_and_register_no_consumer_names():
    code = (
        "import sys, time\n"
        "t = time.perf_counter(); import dassl; dt = time.perf_counter() - t\n"
        "assert 'torch' not in sys.modules, 'import dassl loaded torch'\n"
        "assert dt < 0.05, dt\n"
        "import dassl.config, dassl.engine, dassl.optim, dassl.metrics, dassl.evaluation, dassl.utils, dassl.modeling\n"
        "heavy = {'tensorboard', 'torch.utils.tensorboard', 'sklearn', 'gdown', 'tabulate', 'torchvision'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
        "from dassl.engine import TRAINER_REGISTRY\n"
        "from dassl.evaluation import EVALUATOR_REGISTRY\n"
        "assert TRAINER_REGISTRY.registered_names() == [], TRAINER_REGISTRY.registered_names()\n"
        "assert EVALUATOR_REGISTRY.registered_names() == ['Classification', 'ClassificationMT']\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_registry():
    reg = Registry("THING")

    @reg.register()
    def alpha():
        pass

    assert reg.register(beta := type("beta", (), {})) is beta
    assert reg.registered_names() == ["alpha", "beta"] and reg.get("alpha") is alpha
    with pytest.raises(KeyError, match='An object named "alpha" was already registered in "THING" registry'):
        reg.register(alpha)
    reg.register(alpha, force=True)
    with pytest.raises(KeyError, match='Object name "gamma" does not exist in "THING" registry'):
        reg.get("gamma")


def test_meters():
    meter = AverageMeter()
    meter.update(torch.tensor(2.0))
    meter.update(4.0, n=3)
    assert (meter.val, meter.sum, meter.count, meter.avg) == (4.0, 14.0, 4, 3.5)
    ema = AverageMeter(ema=True)
    ema.update(10.0)
    ema.update(10.0)
    assert ema.avg == pytest.approx(1.9)
    metrics = MetricMeter()
    metrics.update(None)
    metrics.update({"loss": torch.tensor(1.5), "acc": 50.0})
    metrics.update({"loss": 0.5, "acc": 100.0})
    assert str(metrics) == "loss 0.5000 (1.0000) acc 100.0000 (75.0000)"
    assert MetricMeter(delimiter="\t").__class__ is MetricMeter
    with pytest.raises(TypeError):
        metrics.update([1.0])


def test_tools(tmp_path):
    mkdir_if_missing("")
    mkdir_if_missing(str(tmp_path / "a" / "b"))
    mkdir_if_missing(str(tmp_path / "a" / "b"))
    with pytest.warns(UserWarning, match="No file found at"):
        assert not check_isfile(str(tmp_path / "missing"))
    write_json({"b": [1, 2]}, str(tmp_path / "j" / "x.json"))
    assert (tmp_path / "j" / "x.json").read_text() == json.dumps({"b": [1, 2]}, indent=4, separators=(",", ": "))
    assert read_json(str(tmp_path / "j" / "x.json")) == {"b": [1, 2]}
    (tmp_path / "a" / ".hidden").write_text("")
    (tmp_path / "a" / "z").write_text("")
    assert listdir_nohidden(str(tmp_path / "a"), sort=True) == ["b", "z"]
    assert tolist_if_not("x") == ["x"] and tolist_if_not(["x"]) == ["x"]
    assert get_most_similar_str_to_a_from_b("CoOpp", ["CoCoOp", "CoOp", "MaPLe"]) == "CoOp"
    with pytest.raises(ValueError) as info:
        check_availability("CoOpp", ["CoCoOp", "CoOp"])
    assert str(info.value) == ("The requested one is expected to belong to ['CoCoOp', 'CoOp'], "
                               "but got [CoOpp] (do you mean [CoOp]?)")
    check_availability("CoOp", ["CoOp"])


def test_read_image(tmp_path):
    from PIL import Image

    Image.new("L", (3, 2), 7).save(tmp_path / "g.png")
    img = read_image(str(tmp_path / "g.png"))
    assert img.mode == "RGB" and img.size == (3, 2)
    with pytest.raises(FileNotFoundError):
        read_image(str(tmp_path / "none.png"))


def test_set_random_seed_is_deterministic():
    import random

    import numpy as np

    set_random_seed(5)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_random_seed(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_setup_logger_tees_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    setup_logger(None)
    assert not isinstance(sys.stdout, Logger)
    setup_logger(str(tmp_path))
    print("first")
    setup_logger(str(tmp_path))  # log.txt exists: a timestamped file, and no chaining into the first
    print("second")
    sys.stdout.flush()
    sys.stdout.close()
    names = sorted(os.listdir(tmp_path))
    assert names[0] == "log.txt" and re.fullmatch(r"log\.txt-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", names[1])
    assert (tmp_path / "log.txt").read_text() == "first\n"
    assert (tmp_path / names[1]).read_text() == "second\n"
    assert capsys.readouterr().out == "first\nsecond\n"
    setup_logger(str(tmp_path / "sub" / "run.log"))
    print("third")
    sys.stdout.close()
    assert (tmp_path / "sub" / "run.log").read_text() == "third\n"


def test_layer_helpers():
    model = nn.Sequential(OrderedDict(a=nn.Linear(2, 2), b=nn.BatchNorm1d(2)))
    assert count_num_param(model) == 10 and count_num_param(params=model.a.parameters()) == 6
    with pytest.raises(ValueError):
        count_num_param()
    open_specified_layers(model, "a")
    assert model.a.training and not model.b.training
    assert all(p.requires_grad for p in model.a.parameters())
    assert not any(p.requires_grad for p in model.b.parameters())
    with pytest.raises(AttributeError, match='"c" is not an attribute of the model'):
        open_specified_layers(model, ["c"])
    open_all_layers(model)
    assert all(p.requires_grad for p in model.parameters()) and model.b.training
    for init_type in ("normal", "xavier", "kaiming", "orthogonal"):
        init_network_weights(model, init_type=init_type)
        assert torch.equal(model.a.bias, torch.zeros(2)) and torch.equal(model.b.weight, torch.ones(2))
    with pytest.raises(NotImplementedError):
        init_network_weights(model, init_type="uniform")


def test_no_warnings_from_a_warmup_epoch(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_random_seed(0)
        ToyTrainer(toy_cfg(tmp_path, "TEST.NO_TEST", "True")).train()
