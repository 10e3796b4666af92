import pytest

from ffnlib.models import create_model
from ffnlib.train import TrainConfig
from ffnlib.train.optim import lr_at, make_optimizer, set_lr


@pytest.mark.parametrize("name", ["tsm_small", "ffn_small"])
def test_groups_carry_the_official_multipliers(name):
    config = TrainConfig(lr=0.02, weight_decay=1e-4)
    model = create_model(name, num_classes=5)
    groups = {g["name"]: g for g in make_optimizer(model, config).param_groups}
    by_id = {id(p): g for g in groups.values() for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(by_id) == len(named)  # every parameter in exactly one group
    assert by_id[id(model.fc.weight)]["lr"] == pytest.approx(0.1) and by_id[id(model.fc.weight)]["weight_decay"] == 1e-4
    assert by_id[id(model.fc.bias)]["lr"] == pytest.approx(0.2) and by_id[id(model.fc.bias)]["weight_decay"] == 0
    for key, p in named.items():
        group = by_id[id(p)]
        if key.startswith("fc."):
            continue
        if ".bn" in key or key.startswith("bn") or "downsample.1" in key or key.endswith("bias"):
            assert (group["lr"], group["weight_decay"]) == (pytest.approx(0.02), 0.0), key
        else:  # conv weights (adaconv included) decay
            assert p.dim() == 4 and (group["lr"], group["weight_decay"]) == (pytest.approx(0.02), 1e-4), key


def test_every_network_of_an_unshared_ffn_has_its_fc_in_the_fc_groups():
    config = TrainConfig(lr=0.02, weight_decay=1e-4)
    model = create_model("ffn_small", num_classes=5, weight_sharing=False)
    groups = {g["name"]: g for g in make_optimizer(model, config).param_groups}
    assert {id(p) for p in groups["fc_weight"]["params"]} == {id(n.fc.weight) for n in model.branches}
    assert {id(p) for p in groups["fc_bias"]["params"]} == {id(n.fc.bias) for n in model.branches}
    assert groups["fc_weight"]["lr"] == pytest.approx(0.1) and groups["fc_bias"]["lr"] == pytest.approx(0.2)


def test_set_lr_keeps_the_multipliers():
    model = create_model("tsm_small", num_classes=5)
    optimizer = make_optimizer(model, TrainConfig())
    set_lr(optimizer, 0.5)
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([0.5, 0.5, 2.5, 5.0])


def test_step_schedule():
    c = TrainConfig(lr=0.1, epochs=50, lr_steps=(20, 40))
    assert lr_at(0, 10, c) == pytest.approx(0.1)
    assert lr_at(199, 10, c) == pytest.approx(0.1)
    assert lr_at(200, 10, c) == pytest.approx(0.01)
    assert lr_at(400, 10, c) == pytest.approx(0.001)


def test_cosine_with_warmup():
    c = TrainConfig(lr=1.0, epochs=10, lr_schedule="cosine", warmup_steps=10)
    assert lr_at(0, 10, c) == pytest.approx(0.1)
    assert lr_at(9, 10, c) == pytest.approx(1.0)
    assert lr_at(10, 10, c) == pytest.approx(1.0)
    assert lr_at(55, 10, c) == pytest.approx(0.5)
    assert lr_at(99, 10, c) < 0.001
