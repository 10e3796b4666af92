"""ImageNet initialisation from a torchvision-format state dict (faked from a TSM model: TSM-ResNet
names are torchvision names), without real weights or torchvision."""
import builtins

import pytest
import torch

from ffnlib.models import BranchNorm, create_model, load_imagenet
from ffnlib.models.weights import source_key_map

TINY = dict(layers=(1, 2, 1, 1), width=4, stem_channels=16, stem_kernel=3, stem_stride=2, stem_pool=False)


def fake_torchvision(name="tsm_resnet", seed=0, **arch):
    """A torchvision-format state dict with random values everywhere (BN statistics included, so a
    tensor left at its fresh init can never pass for a loaded one) and a 1000-way fc."""
    arch = arch or TINY
    source = create_model(name, num_classes=1000, **arch).state_dict()
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randint(1, 100, v.shape, generator=g) if k.endswith("num_batches_tracked")
                else torch.rand(v.shape, generator=g) + 0.5) for k, v in source.items()}


def test_tsm_loads_one_to_one_and_keeps_its_new_fc():
    model = create_model("tsm_resnet", num_classes=5, **TINY)
    fc_before = model.fc.weight.clone()
    source = fake_torchvision()
    report = load_imagenet(model, source)
    state = model.state_dict()
    for key, value in source.items():
        if not key.startswith("fc."):
            assert torch.equal(state[key], value), key
    assert torch.equal(model.fc.weight, fc_before)
    assert sorted(report.initialised) == ["fc.bias", "fc.weight"]
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"]
    assert len(report.loaded) == len(source) - 2


@pytest.mark.parametrize("kwargs", [{}, dict(adaconv=False), dict(private_bn=False)])
def test_ffn_every_bn_copy_equals_the_source(kwargs):
    model = create_model("ffn_resnet", num_classes=5, **TINY, **kwargs)
    adaconv_before = {k: v.clone() for k, v in model.state_dict().items() if ".adaconv." in k}
    source = fake_torchvision()
    report = load_imagenet(model, source)
    state = model.state_dict()
    copies = 3 if kwargs.get("private_bn", True) else 1
    bn_names = [n for n, m in model.named_modules() if isinstance(m, BranchNorm)]
    assert len(bn_names) == (1 + 3 * 5 + 3 if copies == 3 else 0)  # stem, 3 per block, 3 downsamples
    checked = 0
    for key, value in source.items():
        if key.startswith("fc."):
            continue
        parent, _, leaf = key.rpartition(".")
        if parent in bn_names:
            for branch in range(copies):
                assert torch.equal(state[f"{parent}.{branch}.{leaf}"], value), (key, branch)
                checked += 1
        else:
            assert torch.equal(state[key], value), key  # convs, downsample.0, shared BNs
            checked += 1
    assert checked == len(report.loaded)
    assert "layer2.0.downsample.1.2.running_var" in report.loaded or copies == 1
    for key, before in adaconv_before.items():
        assert torch.equal(state[key], before) and key in report.initialised


def test_resnet50_mapping_covers_every_key():
    ffn = create_model("ffn_resnet50", num_classes=174)
    torchvision_keys = set(create_model("tsm_resnet50", num_classes=1000).state_dict())
    mapping = source_key_map(ffn)
    sources = {v for v in mapping.values() if v is not None}
    assert sources == torchvision_keys - {"fc.weight", "fc.bias"}
    assert mapping["layer3.0.downsample.1.2.running_mean"] == "layer3.0.downsample.1.running_mean"
    assert mapping["layer3.0.downsample.0.weight"] == "layer3.0.downsample.0.weight"
    assert mapping["bn1.1.weight"] == "bn1.weight"
    assert sum(v is None for v in mapping.values()) == 2 + 16 * 3  # fc, one adaconv per block and branch


def test_resnet50_loads_from_a_file(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(fake_torchvision("tsm_resnet", **dict(layers=(3, 4, 6, 3), width=64, stem_channels=64,
                                                     stem_kernel=7, stem_stride=2, stem_pool=True)), path)
    model = create_model("ffn_resnet50", num_classes=174, pretrained=path)
    source = torch.load(path, weights_only=True)
    for branch in range(3):
        assert torch.equal(model.layer4[2].bn3[branch].running_var, source["layer4.2.bn3.running_var"])
        assert torch.equal(model.layer2[0].downsample[1][branch].weight, source["layer2.0.downsample.1.weight"])
    assert torch.equal(model.layer2[0].downsample[0].weight, source["layer2.0.downsample.0.weight"])
    assert len(model.load_report.loaded) == 53 + 3 * 53 * 5  # convs once, 53 BNs x 5 tensors x 3 copies


def _unchanged(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_shape_mismatch_is_a_clear_error_and_changes_nothing():
    model = create_model("ffn_resnet", num_classes=5, **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = fake_torchvision(**dict(TINY, width=8))
    with pytest.raises(ValueError, match=r"shape mismatches \(layer1.0.conv1.weight \(8, 16, 1, 1\) -> "
                                         r"layer1.0.conv1.weight \(4, 16, 1, 1\)"):
        load_imagenet(model, source)
    assert _unchanged(model, before)


def test_unexpected_and_missing_keys_are_clear_errors():
    model = create_model("tsm_resnet", num_classes=5, **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = fake_torchvision()
    renamed = {("module." + k if k.startswith("layer1") else k): v for k, v in source.items()}
    with pytest.raises(ValueError, match=r"unexpected source keys \(module.layer1.0.*missing from the source "
                                         r"\(layer1.0"):
        load_imagenet(model, renamed)
    deeper = fake_torchvision(**dict(TINY, layers=(1, 2, 1, 2)))
    with pytest.raises(ValueError, match=r"unexpected source keys \(layer4\.1\."):
        load_imagenet(model, deeper)
    assert _unchanged(model, before)


def test_old_files_without_num_batches_tracked_load():
    model = create_model("ffn_resnet", num_classes=5, **TINY)
    source = {k: v for k, v in fake_torchvision().items() if not k.endswith("num_batches_tracked")}
    report = load_imagenet(model, source)
    assert torch.equal(model.bn1[2].weight, source["bn1.weight"])
    assert not any(k.endswith("num_batches_tracked") for k in report.loaded)


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("tsm_resnet", 5, pretrained=tmp_path / "nope.pth", **TINY)
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "epoch": 3}, tmp_path / "ckpt.pth")
    with pytest.raises(ValueError, match="flat state dict of tensors"):
        create_model("tsm_resnet", 5, pretrained=tmp_path / "ckpt.pth", **TINY)
    with pytest.raises(ValueError, match="flat state dict of tensors.*state_dict"):
        create_model("tsm_resnet", 5, pretrained={"state_dict": {}, "epoch": 3}, **TINY)


def test_imagenet_without_torchvision_says_to_pass_a_path(monkeypatch):
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(RuntimeError, match=r"torchvision does not import here.*pass its local\s+path"):
        create_model("tsm_resnet50", 174, pretrained="imagenet")
