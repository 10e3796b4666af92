"""ImageNet initialisation from a torchvision-format state dict (faked from a TSM model: TSM-ResNet
names are torchvision names; or written out by torchvision's key rules for ResNet-18/50/101), without
real weights or torchvision."""
import builtins

import pytest
import torch

from ffnlib.models import BranchNorm, UnsharedFFN, create_model, imagenet_url, load_imagenet
from ffnlib.models.weights import describe_source, source_key_map

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


# ------------------------------------------------------------------ torchvision's key rules, every depth
def torchvision_shapes(depth):
    """Key -> shape of torchvision's `resnet<depth>().state_dict()`, written from its rules (torchvision
    does not import here): stem conv1/bn1; per stage `layer<s>.<i>.conv<k>/bn<k>` (2 3x3 convs in a
    basic block, 1x1-3x3-1x1 in a bottleneck of expansion 4) and `downsample.0/1` in a stage's first
    block when the stride or the width changes; fc 1000-way."""
    block, layers = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)),
                     101: ("bottleneck", (3, 4, 23, 3))}[depth]
    expansion = 1 if block == "basic" else 4
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(name, c):
        shapes.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
                       f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})

    bn("bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            if block == "basic":
                convs = [(inplanes, planes, 3), (planes, planes, 3)]
            else:
                convs = [(inplanes, planes, 1), (planes, planes, 3), (planes, planes * 4, 1)]
            for k, (cin, cout, size) in enumerate(convs, start=1):
                shapes[f"{p}.conv{k}.weight"] = (cout, cin, size, size)
                bn(f"{p}.bn{k}", cout)
            if i == 0 and (stage > 1 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes.update({"fc.weight": (1000, inplanes), "fc.bias": (1000,)})
    return shapes


def torchvision_state(depth, device="cpu", seed=0):
    """Random values (distinct per tensor) in torchvision's layout; on the meta device: shapes only."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_shapes(depth).items():
        if device == "meta":
            state[key] = torch.empty(shape, dtype=torch.int64 if not shape else torch.float32, device="meta")
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.randint(1, 100, (), generator=g)
        else:
            state[key] = torch.rand(shape, generator=g) + 0.5
    return state


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_every_depth_has_torchvision_keys_and_shapes(depth):
    with torch.device("meta"):
        model = create_model(f"tsm_resnet{depth}", num_classes=1000)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == torchvision_shapes(depth)
    assert len(torchvision_shapes(depth)) == {18: 122, 50: 320, 101: 626}[depth]


@pytest.mark.parametrize("depth", [18, 101])
@pytest.mark.parametrize("kind", ["tsm", "ffn", "ffn_unshared"])
def test_every_torchvision_tensor_is_placed(depth, kind):
    """Keys and shapes of every variant against torchvision's state dict, on the meta device."""
    with torch.device("meta"):
        model = create_model(f"{kind.split('_')[0]}_resnet{depth}", num_classes=174,
                             **(dict(weight_sharing=False) if kind == "ffn_unshared" else {}))
    report = load_imagenet(model, torchvision_state(depth, "meta"))
    source_keys = set(torchvision_shapes(depth)) - {"fc.weight", "fc.bias"}
    mapping = source_key_map(model)
    assert {src for src in mapping.values() if src is not None} == source_keys
    copies = {"tsm": 1, "ffn": 3, "ffn_unshared": 3}[kind]
    num_bn_tensors = sum(1 for k in source_keys if ".bn" in k or k.startswith("bn") or ".downsample.1." in k)
    if kind == "ffn":  # convs once, every BN tensor into each of the 3 copies
        assert len(report.loaded) == len(source_keys) - num_bn_tensors + 3 * num_bn_tensors
    else:  # one whole copy per network
        assert len(report.loaded) == copies * len(source_keys)
    # left at their init: the fc (one per network), FFN's adaconv (one per block and branch)
    adaconvs = 3 * len(model.blocks()) if kind == "ffn" else 0
    assert len(report.initialised) == 2 * (3 if kind == "ffn_unshared" else 1) + adaconvs


def test_resnet18_values_land_in_tsm_ffn_and_every_unshared_network():
    source = torchvision_state(18)
    tsm = create_model("tsm_resnet18", num_classes=174, pretrained=source)
    ffn = create_model("ffn_resnet18", num_classes=174, pretrained=source)
    unshared = create_model("ffn_resnet18", num_classes=174, weight_sharing=False, pretrained=source)
    tsm_state, ffn_state, unshared_state = tsm.state_dict(), ffn.state_dict(), unshared.state_dict()
    for key, value in source.items():
        if key.startswith("fc."):
            continue
        assert torch.equal(tsm_state[key], value), key
        parent, _, leaf = key.rpartition(".")
        if isinstance(ffn.get_submodule(parent), BranchNorm):
            for branch in range(3):
                assert torch.equal(ffn_state[f"{parent}.{branch}.{leaf}"], value), (key, branch)
        else:
            assert torch.equal(ffn_state[key], value), key
        for branch in range(3):
            assert torch.equal(unshared_state[f"branches.{branch}.{key}"], value), (key, branch)
    for model in (tsm, *unshared.branches):  # the new 174-way fc keeps its init
        assert model.fc.weight.shape == (174, 512) and model.fc.weight.std() < 0.01
    assert isinstance(ffn.layer2[0].downsample[1], BranchNorm)
    assert torch.equal(ffn.layer2[0].downsample[1][2].running_mean, source["layer2.0.downsample.1.running_mean"])


def test_a_file_of_another_depth_is_a_clear_error():
    with torch.device("meta"):
        r50 = create_model("ffn_resnet50", num_classes=174)
        r18 = create_model("tsm_resnet18", num_classes=174)
    with pytest.raises(ValueError, match=r"unexpected source keys \(layer1\.0\.bn3.*The source holds resnet50 "
                                         r"\(bottleneck blocks, layers 3,4,6,3, width 64\); the model is resnet18.*"
                                         r"resnet18: https://download.pytorch.org/models/resnet18-f37072fd.pth"):
        load_imagenet(r18, torchvision_state(50, "meta"))
    with pytest.raises(ValueError, match=r"missing from the source.*The source holds resnet18 \(basic blocks, layers "
                                         r"2,2,2,2, width 64\); the model is resnet50"):
        load_imagenet(r50, torchvision_state(18, "meta"))
    with torch.device("meta"):
        r101 = create_model("tsm_resnet101", num_classes=174)
    with pytest.raises(ValueError, match=r"unexpected source keys \(layer3\.10\..*the model is resnet50"):
        load_imagenet(r50, torchvision_state(101, "meta"))
    with pytest.raises(ValueError, match=r"missing from the source \(layer3\.10\..*holds resnet50.*the model is resnet101"):
        load_imagenet(r101, torchvision_state(50, "meta"))
    assert describe_source({"layer1.0.conv1.weight": torch.zeros(8, 4, 1, 1), "layer1.0.conv3.weight": torch.zeros(1)}) \
        == "bottleneck blocks, layers 1,0,0,0, width 8"


@pytest.mark.parametrize("name,file", [("tsm_resnet18", "resnet18-f37072fd.pth"), ("ffn_resnet50", "resnet50-0676ba61.pth"),
                                       ("ffn_resnet101", "resnet101-63fe2227.pth")])
def test_imagenet_without_torchvision_names_the_file_of_the_depth(monkeypatch, name, file):
    real_import = builtins.__import__

    def broken(module, *args, **kwargs):
        if module.startswith("torchvision"):
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with torch.device("meta"):
        with pytest.raises(RuntimeError, match=f"Download https://download.pytorch.org/models/{file} .*{file}"):
            create_model(name, 174, pretrained="imagenet")
    assert imagenet_url(file.split("-")[0]).endswith(file)


def test_imagenet_for_an_architecture_without_weights_is_a_clear_error():
    with pytest.raises(ValueError, match=r"tsm_small: ImageNet weights exist for resnet18, resnet50, resnet101 only"):
        create_model("tsm_small", 8, pretrained="imagenet")
    with pytest.raises(ValueError, match="ImageNet weights exist for resnet18, resnet50, resnet101 only, not 'resnet34'"):
        imagenet_url("resnet34")


def test_unshared_ffn_loads_every_network_from_a_tiny_source():
    model = create_model("ffn_resnet", num_classes=5, weight_sharing=False, **TINY)
    assert isinstance(model, UnsharedFFN)
    source = fake_torchvision()
    report = load_imagenet(model, source)
    for i, network in enumerate(model.branches):
        state = network.state_dict()
        assert all(torch.equal(state[k], v) for k, v in source.items() if not k.startswith("fc.")), i
    assert sorted(report.initialised) == [f"branches.{i}.fc.{leaf}" for i in range(3) for leaf in ("bias", "weight")]
