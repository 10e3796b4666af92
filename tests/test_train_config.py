import pytest

from ffnlib.train import TrainConfig


def test_defaults_are_the_official_recipe():
    c = TrainConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == (0.01, 0.9, 5e-4, 32, 50)
    assert (c.lr_steps, c.lr_gamma, c.dropout, c.clip_grad_norm) == ((20, 40), 0.1, 0.5, 20.0)
    assert (c.fc_lr_mult, c.fc_bias_lr_mult, c.frame_counts, c.lam) == (5.0, 10.0, (4, 8, 16), 1.0)
    assert c.model_name == "tsm_resnet50"
    assert TrainConfig(recipe="ffn").model_name == "ffn_resnet50"


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
    ({"batch_size": 0}, "batch_size"),
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
    assert (c.epochs, c.arch, c.model_name) == (3, "small", "ffn_small")


def test_from_namespace_takes_only_config_names():
    namespace = {"lr": 0.1, "epochs": 2, "run_dir": "runs/x", "np": object()}
    c = TrainConfig.from_namespace(namespace)
    assert (c.lr, c.epochs) == (0.1, 2)


@pytest.mark.parametrize("recipe, num_frames, name", [("vanilla", 16, "vanilla"), ("vanilla", 4, "st"),
                                                      ("ffn", 16, "ffn"), ("mixed", 16, "mixed")])
def test_table_name(recipe, num_frames, name):
    assert TrainConfig(recipe=recipe, num_frames=num_frames).table_name == name
