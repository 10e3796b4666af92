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
    ({"recipe": "proportional", "frame_probs": [0.5, 0.5]}, "frame_probs=.*one probability per frame count"),
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


@pytest.mark.parametrize("changes, model, model_name, train_frames, variant", [
    ({"recipe": "vanilla"}, "vanilla", "vanilla_16f", "16", ""),
    ({"recipe": "vanilla", "num_frames": 4}, "st", "st_4f", "4", ""),
    ({"recipe": "ffn"}, "ffn", "ffn", "4/8/16", ""),
    ({"recipe": "ffn", "lam": 0.5}, "ffn", "ffn", "4/8/16", "lam=0.5"),
    ({"recipe": "ffn", "frame_counts": [4, 8, 12, 16]}, "ffn", "ffn_4-8-12-16", "4/8/12/16", ""),
    ({"recipe": "ffn", "private_bn": False}, "ffn_no_sn", "ffn_no_sn", "4/8/16", ""),
    ({"recipe": "ffn", "adaconv": False}, "ffn_no_wa", "ffn_no_wa", "4/8/16", ""),
    ({"recipe": "ffn", "distill": False, "lam": 0.5}, "ffn_no_td", "ffn_no_td", "4/8/16", ""),  # lam is inert
    ({"recipe": "ffn", "weight_sharing": False, "frame_counts": [4, 16]}, "ffn_no_ws", "ffn_no_ws_4-16", "4/16", ""),
    ({"recipe": "ffn", "private_bn": False, "adaconv": False, "distill": False}, "ffn_no_sn_no_wa_no_td",
     "ffn_no_sn_no_wa_no_td", "4/8/16", ""),
    ({"recipe": "proportional", "frame_counts": [4, 16]}, "proportional", "proportional", "4/16", "frame_probs=0.5/0.5"),
    ({"recipe": "proportional", "frame_counts": [4, 16], "frame_probs": [0.25, 0.75]}, "proportional",
     "proportional_p0.25-0.75", "4/16", "frame_probs=0.25/0.75"),
    ({"recipe": "proportional"}, "proportional", "proportional_4-8-16", "4/8/16", "frame_probs=0.333333/0.333333/0.333333"),
    ({"recipe": "mixed", "frame_counts": [4, 16]}, "mixed", "mixed", "4/16", "mixup_prob=0.5"),
    ({"recipe": "mixed", "frame_counts": [4, 16], "mixup_prob": 0.75, "mixup_alpha": 0.2}, "mixed",
     "mixed_rho0.75_alpha0.2", "4/16", "mixup_prob=0.75,mixup_alpha=0.2"),
    ({"recipe": "finetune", "num_frames": 4}, "finetune", "finetune_4f", "4", "init_from=vanilla_16f"),
])
def test_names_in_the_table_and_the_run_folder(changes, model, model_name, train_frames, variant):
    config = TrainConfig.from_dict(changes)
    assert (config.model, config.model_name, config.train_frames, config.variant) == (
        model, model_name, train_frames, variant)


@pytest.mark.parametrize("values, message", [
    ({"recipe": "mixed"}, "two frame counts for the mixed recipe"),
    ({"recipe": "mixed", "frame_counts": [4, 16], "mixup_prob": 1.5}, r"mixup_prob=1.5: expected a probability"),
    ({"mixup_alpha": 0.0}, "mixup_alpha=0.0: expected a positive number"),
    ({"recipe": "finetune", "init_from": ""}, "init_from='': expected the model to fine-tune"),
    ({"model_kwargs": {"private_bn": False}}, r"private_bn is a config key of its own \(set `private_bn: false`"),
    ({"recipe": "ffn", "weight_sharing": False, "adaconv": False}, "adaconv=False: expected True .* with weight_sharing=False"),
    ({"recipe": "ffn", "weight_sharing": False, "private_bn": False}, "private_bn=False: expected True"),
])
def test_the_papers_switches_are_checked(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values, source="p.yaml")


def test_recipe_keys_are_inert_elsewhere_and_left_out_of_a_models_identity():
    keys = ("recipe", "num_frames", "frame_counts", "lam", "mixup_prob", "private_bn")
    vanilla = TrainConfig.from_dict({"mixup_prob": 0.75, "private_bn": False, "lam": 2.0})
    assert vanilla.inert() == ["lam", "private_bn", "mixup_prob"]
    assert vanilla.fit_identity(keys) == {"recipe": "vanilla", "num_frames": 16} == TrainConfig().fit_identity(keys)
    mixed = TrainConfig.from_dict({"recipe": "mixed", "frame_counts": [4, 16], "mixup_prob": 0.75})
    assert mixed.fit_identity(keys) == {"recipe": "mixed", "frame_counts": [4, 16], "mixup_prob": 0.75}
    no_td = TrainConfig.from_dict({"recipe": "ffn", "distill": False, "lam": 2.0})
    assert no_td.inert() == ["lam"] and "lam" not in no_td.fit_identity(keys)


def test_a_saved_config_of_the_old_mixed_recipe_is_refused_and_old_switches_move():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("mixup_prob", "mixup_alpha")}
    with pytest.raises(ConfigError, match="best.pt was trained with the recipe once called 'mixed'"):
        TrainConfig.from_saved({**old, "recipe": "mixed", "frame_counts": [4, 16]}, source="best.pt")
    assert TrainConfig.from_saved({**old, "recipe": "vanilla"}).recipe == "vanilla"
    moved = TrainConfig.from_saved({"recipe": "ffn", "model_kwargs": {"adaconv": False, "fold_div": 4}})
    assert moved.adaconv is False and moved.model_kwargs == {"fold_div": 4} and moved.model == "ffn_no_wa"


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
