import pytest

from ffnlib.errors import ConfigError
from ffnlib.train import TrainConfig
from ffnlib.train.config import parse_overrides


def test_defaults_are_the_official_recipe():
    c = TrainConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == (0.01, 0.9, 5e-4, 32, 50)
    assert (c.lr_steps, c.lr_gamma, c.dropout, c.clip_grad_norm) == ((20, 40), 0.1, 0.5, 20.0)
    assert (c.fc_lr_mult, c.fc_bias_lr_mult, c.frame_counts, c.lam) == (5.0, 10.0, (4, 8, 16), 1.0)
    assert c.network == "tsm_resnet50"
    assert TrainConfig(recipe="ffn").network == "ffn_resnet50"


def test_unknown_key_is_rejected_and_named():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})


@pytest.mark.parametrize("key, value", [("lr", "0.1"), ("epochs", 2.5), ("epochs", True), ("compile", 1),
                                        ("frame_counts", 16), ("builtin", [1]), ("frame_counts", ["a"])])
def test_wrong_type_is_rejected_and_named(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: value}, source="params.yaml")


@pytest.mark.parametrize("values, key", [
    ({"recipe": "distill"}, "recipe"), ({"lr_schedule": "poly"}, "lr_schedule"), ({"amp": "fp8"}, "amp"),
    ({"frame_counts": [16, 16]}, "frame_counts"), ({"recipe": "ffn", "frame_counts": [16]}, "frame_counts"),
    ({"frame_probs": [0.5]}, "frame_probs"), ({"frame_probs": [0.5, 0.6, 0.1]}, "frame_probs"),
    ({"frame_size": 256, "resize_size": 224}, "resize_size"), ({"dropout": 1.0}, "dropout"),
    ({"batch_size": 0}, "batch_size"), ({"lr": float("nan")}, "lr"), ({"lam": float("inf")}, "lam"),
    ({"arch": "resnet5"}, "arch"), ({"device": "gpu"}, "device"), ({"seed": -1}, "seed"),
    ({"builtin": {"num_clases": 8}}, "num_clases"), ({"builtin": {"num_classes": 99}}, "num_classes"),
])
def test_inconsistent_values_are_rejected(values, key):
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict(values)


def test_lists_become_tuples_ints_become_floats_and_yaml_round_trips(tmp_path):
    c = TrainConfig.from_dict({"frame_counts": [4, 16], "lr": 1, "builtin": {"num_train": 8}})
    assert c.frame_counts == (4, 16) and c.lr == 1.0 and isinstance(c.lr, float)
    path = tmp_path / "c.yaml"
    path.write_text(c.to_yaml())
    assert TrainConfig.from_yaml(path) == c


def test_profile_train_section_and_overrides(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("train:\n  epochs: 3\n  arch: small\nnotebooks:\n  01_data: {split: train}\n")
    c = TrainConfig.from_yaml(path, {"recipe": "ffn"})
    assert (c.epochs, c.arch, c.network) == (3, "small", "ffn_small")


@pytest.mark.parametrize("recipe, num_frames, model, model_name", [
    ("vanilla", 16, "vanilla", "vanilla_16f"), ("vanilla", 4, "st", "st_4f"), ("ffn", 16, "ffn", "ffn"),
    ("mixed", 16, "mixed", "mixed")])
def test_names_in_the_table_and_the_run_folder(recipe, num_frames, model, model_name):
    config = TrainConfig(recipe=recipe, num_frames=num_frames)
    assert (config.model, config.model_name) == (model, model_name)


def test_a_checkpoint_config_with_an_old_key_name_still_reads():
    assert TrainConfig.from_dict({"eval_frame_counts": [4, 16]}).eval_frames == (4, 16)


def test_set_options_are_read_as_yaml_and_bad_ones_named():
    assert parse_overrides(["lr=0.1", "frame_counts=[4,16]", "data_root="]) == {
        "lr": 0.1, "frame_counts": [4, 16], "data_root": ""}
    with pytest.raises(ConfigError, match="expects key=value, got 'lr'"):
        parse_overrides(["lr"])
    with pytest.raises(ConfigError, match="not YAML"):
        parse_overrides(["frame_counts=[4,"])


def test_every_field_says_what_it_is():
    """Each TrainConfig field carries a comment on its line in ffnlib/train/config.py."""
    import inspect

    source = inspect.getsource(TrainConfig).splitlines()
    lines = {name: next(line for line in source if line.strip().startswith(f"{name}:")) for name in TrainConfig.fields()}
    bare = [name for name, line in lines.items() if "  # " not in line]
    assert bare == [], f"TrainConfig fields without a comment: {bare}"
