"""dassl.config: defaults and their types, merging, unknown-key errors, consumer patterns."""
import pytest
from yacs.config import CfgNode as CN

from dassl.config import clean_cfg, get_cfg_default


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_returns_a_fresh_yacs_node_each_call():
    a, b = get_cfg_default(), get_cfg_default()
    assert isinstance(a, CN) and isinstance(a.OPTIM, CN)
    a.OPTIM.LR = 1.0
    assert b.OPTIM.LR == 0.0003
    assert get_cfg_default().OPTIM.LR == 0.0003


@pytest.mark.parametrize("key, value", [
    ("VERSION", 1), ("OUTPUT_DIR", "./output"), ("RESUME", ""), ("SEED", -1), ("USE_CUDA", True),
    ("INPUT.SIZE", (224, 224)), ("INPUT.INTERPOLATION", "bilinear"), ("INPUT.TRANSFORMS", ()),
    ("INPUT.PIXEL_MEAN", [0.485, 0.456, 0.406]), ("INPUT.PIXEL_STD", [0.229, 0.224, 0.225]),
    ("INPUT.RRCROP_SCALE", (0.08, 1.0)), ("INPUT.GN_MEAN", 0.0), ("INPUT.GB_K", 21),
    ("DATASET.SOURCE_DOMAINS", ()), ("DATASET.NUM_SHOTS", -1), ("DATASET.VAL_PERCENT", 0.1),
    ("DATASET.SUBSAMPLE_CLASSES", "all"), ("DATALOADER.NUM_WORKERS", 4),
    ("DATALOADER.TRAIN_X.SAMPLER", "RandomSampler"), ("DATALOADER.TRAIN_X.BATCH_SIZE", 32),
    ("DATALOADER.TEST.SAMPLER", "SequentialSampler"), ("DATALOADER.TRAIN_U.SAME_AS_X", True),
    ("MODEL.INIT_WEIGHTS", ""), ("MODEL.BACKBONE.PRETRAINED", True), ("MODEL.HEAD.HIDDEN_LAYERS", ()),
    ("MODEL.HEAD.DROPOUT", 0.0), ("OPTIM.NAME", "adam"), ("OPTIM.LR", 0.0003),
    ("OPTIM.WEIGHT_DECAY", 5e-4), ("OPTIM.SGD_DAMPNING", 0), ("OPTIM.NEW_LAYERS", ()),
    ("OPTIM.STEPSIZE", (-1,)), ("OPTIM.MAX_EPOCH", 10), ("OPTIM.WARMUP_EPOCH", -1),
    ("OPTIM.WARMUP_TYPE", "linear"), ("OPTIM.WARMUP_CONS_LR", 1e-5), ("OPTIM.WARMUP_RECOUNT", True),
    ("TRAIN.CHECKPOINT_FREQ", 0), ("TRAIN.PRINT_FREQ", 10), ("TRAIN.COUNT_ITER", "train_x"),
    ("TEST.EVALUATOR", "Classification"), ("TEST.SPLIT", "test"), ("TEST.FINAL_MODEL", "last_step"),
    ("TRAINER.NAME", ""), ("TRAINER.CDAC.CLASS_LR_MULTI", 10), ("TRAINER.MIXMATCH.WEIGHT_U", 100.0),
    ("TRAINER.DDAIG.CLAMP_MIN", -1.0), ("TRAINER.FIXMATCH.STRONG_TRANSFORMS", ()),
])
def test_default_values_and_exact_types(key, value):
    node = get_cfg_default()
    for part in key.split("."):
        node = node[part]
    assert node == value
    assert type(node) is type(value)


def test_print_is_yacs_sorted_two_space_tree():
    text = str(get_cfg_default())
    lines = text.splitlines()
    assert lines[0] == "DATALOADER:"
    assert "OPTIM:\n  ADAM_BETA1: 0.9\n  ADAM_BETA2: 0.999\n  BASE_LR_MULT: 0.1" in text
    assert "TRAINER:\n  CDAC:\n    CLASS_LR_MULTI: 10" in text
    assert "INPUT:\n  COLORJITTER_B: 0.4" in text
    top = [line[:-1] for line in lines if line and not line.startswith(" ") and line.endswith(":")]
    assert top == sorted(top)


def test_yaml_then_list_merge_and_type_coercion(tmp_path):
    cfg = get_cfg_default()
    cfg.merge_from_file(write(tmp_path, "a.yaml", (
        "OPTIM:\n  LR: 0.002\n  WARMUP_CONS_LR: 1e-5\n  STEPSIZE: [2, 4]\n"
        "INPUT:\n  SIZE: [32, 32]\n  TRANSFORMS: ['random_flip', 'normalize']\n"
    )))
    # YAML 1.1 reads 1e-5 as a string; yacs literal_evals it to a float
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and type(cfg.OPTIM.WARMUP_CONS_LR) is float
    assert cfg.OPTIM.STEPSIZE == (2, 4) and cfg.INPUT.SIZE == (32, 32)  # list -> tuple
    assert cfg.INPUT.TRANSFORMS == ("random_flip", "normalize")
    cfg.merge_from_list(["OPTIM.LR", "0.01", "INPUT.SIZE", "(64, 64)", "OUTPUT_DIR", "out/x", "SEED", "3"])
    assert cfg.OPTIM.LR == 0.01 and cfg.INPUT.SIZE == (64, 64)
    assert cfg.OUTPUT_DIR == "out/x" and cfg.SEED == 3


def test_type_mismatch_is_a_value_error_naming_the_key_and_file(tmp_path):
    cfg = get_cfg_default()
    path = write(tmp_path, "bad.yaml", "OPTIM:\n  LR: 1\n")
    with pytest.raises(ValueError, match="OPTIM.LR") as info:
        cfg.merge_from_file(path)
    assert path in str(info.value)
    with pytest.raises(ValueError, match="Type mismatch"):
        cfg.merge_from_list(["OPTIM.MAX_EPOCH", "1.5"])


def test_unknown_key_in_yaml_names_closest_key_and_file(tmp_path):
    cfg = get_cfg_default()
    path = write(tmp_path, "typo.yaml", "OPTIM:\n  LRR: 0.1\n")
    with pytest.raises(KeyError) as info:
        cfg.merge_from_file(path)
    msg = info.value.args[0]
    assert msg == f"{path}: Non-existent config key: OPTIM.LRR (did you mean OPTIM.LR?)"


def test_unknown_key_on_command_line_names_closest_key():
    cfg = get_cfg_default()
    with pytest.raises(KeyError) as info:
        cfg.merge_from_list(["OPTIM.LRR", "0.1"])
    assert info.value.args[0] == "Non-existent config key: OPTIM.LRR (did you mean OPTIM.LR?)"
    with pytest.raises(KeyError) as info:
        cfg.merge_from_list(["NOTHING_LIKE_IT.AT_ALL_XYZ", "1"])
    assert info.value.args[0] == "Non-existent config key: NOTHING_LIKE_IT.AT_ALL_XYZ"
    assert cfg.OPTIM.LR == 0.0003  # nothing merged


def test_unknown_key_under_a_consumer_node():
    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16
    with pytest.raises(KeyError) as info:
        cfg.merge_from_other_cfg(CN({"TRAINER": {"COOP": {"NCTX": 4}}}))
    assert info.value.args[0] == "Non-existent config key: TRAINER.COOP.NCTX (did you mean TRAINER.COOP.N_CTX?)"


def test_odd_option_list_is_a_value_error():
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        get_cfg_default().merge_from_list(["OPTIM.LR"])


def test_consumer_nodes_merge_from_yaml(tmp_path):
    """extend_cfg adds plain CfgNodes; YAML sub-trees must merge into them (and into new keys)."""
    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.TRAINER.COOP.CTX_INIT = ""
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    cfg.merge_from_file(write(tmp_path, "m.yaml", (
        "TRAINER:\n  COOP:\n    N_CTX: 4\n    CTX_INIT: 'a photo of a'\nDATASET:\n  SUBSAMPLE_CLASSES: base\n"
    )))
    assert cfg.TRAINER.COOP.N_CTX == 4 and cfg.TRAINER.COOP.CTX_INIT == "a photo of a"
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "base"
    assert type(cfg.TRAINER.COOP) is CN


def test_consumer_patterns_lowercase_keys_freeze_defrost():
    cfg = get_cfg_default()
    cfg.eval_only = False  # LAMM adds lowercase keys
    cfg.freeze()
    with pytest.raises(AttributeError):
        cfg.OPTIM.LR = 1.0
    cfg.defrost()  # MVLPT rewrites DATASET.NAME inside its DataManager
    cfg.DATASET.NAME = "Caltech101"
    cfg.freeze()
    assert cfg.DATASET.NAME == "Caltech101" and cfg.eval_only is False
    clone = cfg.clone()
    assert clone == cfg and type(clone) is type(cfg)


def test_clean_cfg_keeps_name_and_own_node():
    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.NAME = "CoOp"
    clean_cfg(cfg, "CoOp")
    assert sorted(cfg.TRAINER.keys()) == ["COOP", "NAME"]
