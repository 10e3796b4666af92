"""TSM-ResNet, FFN-ResNet and create_model: shapes, gradients, FFN = TSM when its parts are neutral,
the branch table, ablations, clear errors, exact parameter counts, FLOPs; basic blocks (ResNet-18),
ResNet-101 and its every-other-block shift, FFN without weight sharing."""
import hashlib

import pytest
import torch
from torch import nn

from ffnlib.losses import temporal_distillation_by_count
from ffnlib.models import (ARCHITECTURES, BasicBlock, Bottleneck, BranchNorm, FFNResNet, TSMResNet, UnsharedFFN,
                           create_model, flops, list_models, load_imagenet, nearest_count, num_parameters,
                           parameter_table, stage_shapes)

# A network small enough for many forward passes: 16x16 frames -> 8x8 after the stem -> 1x1 in layer4.
TINY = dict(layers=(1, 1, 1, 1), width=4, stem_channels=16, stem_kernel=3, stem_stride=2, stem_pool=False)
TINY_BASIC = dict(TINY, block="basic", layers=(2, 1, 1, 1), width=8)  # layer1.1: a block without downsample
FRAME = 16
VARIANTS = [("tsm_resnet", TINY), ("ffn_resnet", TINY), ("tsm_small", {}), ("ffn_small", {}),
            ("tsm_resnet", dict(TINY, layers=(2, 1, 1, 2), stem_pool=True, stem_kernel=7)),
            ("ffn_resnet", dict(TINY, private_bn=False)), ("ffn_resnet", dict(TINY, adaconv=False)),
            ("tsm_resnet", TINY_BASIC), ("ffn_resnet", TINY_BASIC), ("ffn_resnet", dict(TINY, weight_sharing=False))]
IDS = ["tsm_tiny", "ffn_tiny", "tsm_small", "ffn_small", "tsm_tiny_pool", "ffn_shared_bn", "ffn_no_adaconv",
       "tsm_basic", "ffn_basic", "ffn_unshared"]


def clip(b, t, size=FRAME, seed=0):
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))  # (B, C, T, H, W)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
@pytest.mark.parametrize("t", [1, 6, 16])
@pytest.mark.parametrize("b", [1, 2])
def test_logits_shape_at_any_t_and_batch_size(name, kwargs, t, b):
    model = create_model(name, num_classes=5, **kwargs)
    for mode in (True, False):
        if mode and b * t == 1:
            continue  # BatchNorm cannot train on a single frame
        model.train(mode)
        logits = model(clip(b, t))
        assert logits.shape == (b, 5) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_head_averages_per_frame_logits(name, kwargs):
    model = create_model(name, num_classes=5, **kwargs).eval()
    x = clip(2, 4)
    features = model.features(x)
    assert features.shape == (2, 4, model.num_features)
    fc = model.network_for(4).fc if isinstance(model, UnsharedFFN) else model.fc
    per_frame = fc(features)  # (B, T, classes)
    torch.testing.assert_close(model(x), per_frame.mean(dim=1))


def test_frames_of_one_video_interact_and_videos_do_not():
    model = create_model("tsm_resnet", num_classes=5, **TINY).eval()
    x = clip(2, 4)
    base = model(x)
    later_frame = x.clone()
    later_frame[0, :, 3] += 1.0  # only frame 3 of video 0 changes
    out = model(later_frame)
    assert not torch.allclose(out[0], base[0])
    torch.testing.assert_close(out[1], base[1], rtol=0, atol=0)
    # Without the shift, frame 3 would only reach video 0's logits through its own frame: check the
    # shift carries it to the features of frame 2.
    assert not torch.allclose(model.features(later_frame)[0, 2], model.features(x)[0, 2])


@pytest.mark.parametrize("name,kwargs", [("tsm_resnet", {}), ("ffn_resnet", {}),
                                         ("ffn_resnet", dict(private_bn=False)), ("ffn_resnet", dict(adaconv=False)),
                                         ("tsm_resnet", TINY_BASIC), ("ffn_resnet", TINY_BASIC),
                                         ("ffn_resnet", dict(weight_sharing=False))])
def test_gradients_reach_every_parameter(name, kwargs):
    model = create_model(name, num_classes=5, zero_init_residual=False, **{**TINY, **kwargs}).train()
    target = torch.tensor([1, 3])
    if isinstance(model, (FFNResNet, UnsharedFFN)):
        clips = [clip(2, t, seed=t) for t in model.frame_counts]
        loss = temporal_distillation_by_count(dict(zip(model.frame_counts, model(clips))), target).total
    else:
        loss = nn.functional.cross_entropy(model(clip(2, 8)), target)
    loss.backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, key


@pytest.mark.parametrize("arch", [TINY, TINY_BASIC], ids=["bottleneck", "basic"])
def test_zero_init_residual_zeroes_every_copy_of_the_last_bn(arch):
    for name in ("tsm_resnet", "ffn_resnet"):
        model = create_model(name, num_classes=5, zero_init_residual=True, **arch)
        for block in model.blocks():
            last = block.bn3 if isinstance(block, Bottleneck) else block.bn2
            norms = last if isinstance(last, BranchNorm) else [last]
            assert all(torch.count_nonzero(n.weight) == 0 for n in norms)
            first = block.bn1 if name == "tsm_resnet" else block.bn1[0]
            assert torch.count_nonzero(first.weight) > 0
        assert torch.count_nonzero(model.bn1.weight if name == "tsm_resnet" else model.bn1[0].weight) > 0


def test_fc_init():
    model = create_model("tsm_resnet50", num_classes=174)
    assert torch.count_nonzero(model.fc.bias) == 0
    assert 0.0008 < model.fc.weight.std().item() < 0.0012


def tsm_and_equivalent_ffn(frame_counts=(4, 8, 16), arch=TINY, **kwargs):
    """A TSM and an FFN whose BN copies all equal the TSM's BNs (running stats too), adaconv zero."""
    tsm = create_model("tsm_resnet", num_classes=5, **arch, **kwargs)
    with torch.no_grad():  # non-trivial BN parameters and statistics
        for m in tsm.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
        tsm.fc.weight.normal_(0, 0.1)
    ffn = create_model("ffn_resnet", num_classes=5, frame_counts=frame_counts, **arch, **kwargs)
    load_imagenet(ffn, tsm.state_dict())
    with torch.no_grad():
        ffn.fc.load_state_dict(tsm.fc.state_dict())
        for block in ffn.blocks():
            for conv in block.adaconv:
                conv.weight.zero_()
    return tsm, ffn


@pytest.mark.parametrize("arch", [TINY, TINY_BASIC], ids=["bottleneck", "basic"])
@pytest.mark.parametrize("train", [False, True])
def test_neutral_ffn_is_exactly_tsm(train, arch):
    tsm, ffn = tsm_and_equivalent_ffn(arch=arch, dropout=0.0)
    tsm.train(train), ffn.train(train)
    for t in (1, 4, 5, 6, 8, 12, 16, 20):
        torch.testing.assert_close(ffn(clip(2, t, seed=t)), tsm(clip(2, t, seed=t)), rtol=0, atol=0)
    clips = [clip(2, t, seed=t) for t in (16, 4, 8)]
    for out, x in zip(ffn(clips), clips):
        torch.testing.assert_close(out, tsm(x), rtol=0, atol=0)


def test_adaconv_is_a_depthwise_conv_added_before_conv1():
    model = create_model("ffn_resnet", num_classes=5, adaconv_init="official", **TINY).eval()
    block, branch = model.layer2[0], 1
    adaconv = block.adaconv[branch]
    x = torch.randn(8, block.conv1.in_channels, 4, 4)  # (N*T, C, H, W), T = 4
    depthwise = nn.functional.conv2d(x, adaconv.weight, groups=x.shape[1])
    torch.testing.assert_close(adaconv(x), x + depthwise)
    # The paper's order, written out: shift, out + adaconv(out), conv1, bn1, ...
    out = block.shift(x, 4)
    out = out + nn.functional.conv2d(out, adaconv.weight, groups=x.shape[1])
    out = block.relu(block.bn1[branch](block.conv1(out)))
    out = block.relu(block.bn2[branch](block.conv2(out)))
    out = block.bn3[branch](block.conv3(out))
    identity = block.downsample[1][branch](block.downsample[0](x))
    torch.testing.assert_close(block(x, 4, branch), block.relu(out + identity))


@pytest.mark.parametrize("layer,index", [("layer1", 1), ("layer2", 0)], ids=["identity", "strided_downsample"])
def test_basic_block_adaconv_is_a_depthwise_conv_added_before_the_strided_3x3_conv1(layer, index):
    model = create_model("ffn_resnet", num_classes=5, adaconv_init="official", **TINY_BASIC).eval()
    block, branch = getattr(model, layer)[index], 2
    assert isinstance(block, BasicBlock) and block.conv1.kernel_size == (3, 3)
    adaconv = block.adaconv[branch]
    x = torch.randn(8, block.conv1.in_channels, 6, 6)  # (N*T, C, H, W), T = 4
    # The paper's order, written out: shift, out + adaconv(out), conv1 (3x3, the stage's stride), bn1, conv2, bn2
    out = block.shift(x, 4)
    out = out + nn.functional.conv2d(out, adaconv.weight, groups=x.shape[1])
    out = block.relu(block.bn1[branch](block.conv1(out)))
    out = block.bn2[branch](block.conv2(out))
    identity = x if block.downsample is None else block.downsample[1][branch](block.downsample[0](x))
    assert block.conv1.stride == ((2, 2) if layer == "layer2" else (1, 1))
    torch.testing.assert_close(block(x, 4, branch), block.relu(out + identity))


def test_branch_table():
    model = create_model("ffn_resnet", num_classes=5, **TINY)
    table = {t: model.branch_for(t) for t in range(1, 25)}
    expected = {**{t: 4 for t in range(1, 6)}, **{t: 8 for t in range(6, 12)}, **{t: 16 for t in range(12, 25)}}
    assert table == expected
    assert model.frame_counts == (4, 8, 16)
    assert nearest_count(3, (2, 4)) == 4 and nearest_count(7, (2, 4, 10)) == 10  # ties to the larger
    assert create_model("ffn_resnet", 5, frame_counts=(16, 2, 8), **TINY).frame_counts == (2, 8, 16)


def test_inference_uses_the_nearest_branch_and_the_real_t():
    model = create_model("ffn_resnet", num_classes=5, **TINY).eval()
    used = []
    for branch, norm in enumerate(model.bn1):
        norm.register_forward_hook(lambda m, i, o, branch=branch: used.append(branch))
    for t, branch in [(2, 0), (5, 0), (6, 1), (11, 1), (12, 2), (24, 2)]:
        used.clear()
        model(clip(1, t))
        assert used == [branch], t
    # The 8F branch evaluated on 6 frames shifts with T=6: a frame's neighbours are its own video's.
    x = clip(2, 6)
    base = model(x)
    x[1] += 1
    torch.testing.assert_close(model(x)[0], base[0], rtol=0, atol=0)


def test_multi_clip_forward_keeps_the_order_and_uses_each_branch():
    model = create_model("ffn_resnet", num_classes=5, **TINY).eval()
    with torch.no_grad():  # make the branches differ
        for m in model.modules():
            if isinstance(m, BranchNorm):
                for k, norm in enumerate(m):
                    norm.bias.fill_(0.1 * k)
    x4, x8, x16 = clip(2, 4, seed=1), clip(2, 8, seed=2), clip(2, 16, seed=3)
    a = model([x4, x8, x16])
    b = model((x16, x4))
    torch.testing.assert_close(b[0], a[2]), torch.testing.assert_close(b[1], a[0])
    for out, x in zip(a, (x4, x8, x16)):
        torch.testing.assert_close(out, model(x))  # each T is a trained count: same branch both ways


@pytest.mark.parametrize("weight_sharing", [True, False])
@pytest.mark.parametrize("mode,mixes", [("per_branch", False), ("official", True)])
def test_official_shift_mode_mixes_videos_only_when_asked(mode, mixes, weight_sharing):
    model = create_model("ffn_resnet", num_classes=5, shift_mode=mode, dropout=0.0, weight_sharing=weight_sharing,
                         **TINY).train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # batch statistics would mix the videos anyway
    x4 = clip(4, 4)  # 4 videos x 4 frames = 16 frames: one "video" of 16 for the official shift
    base = model([x4])[0]
    x4[1] += 1  # change video 1 only
    changed = model([x4])[0]
    assert (not torch.allclose(changed[0], base[0])) == mixes
    model.eval()  # evaluation always shifts with the real T
    base = model([x4])[0]
    x4[1] -= 1
    torch.testing.assert_close(model([x4])[0][0], base[0], rtol=0, atol=0)


def test_official_shift_mode_needs_whole_groups_of_16_frames():
    model = create_model("ffn_resnet", num_classes=5, shift_mode="official", **TINY).train()
    with pytest.raises(ValueError, match="multiple of 16"):
        model([clip(3, 4), clip(3, 8), clip(3, 16)])


@pytest.mark.parametrize("init", ["paper", "official"])
def test_adaconv_init(init):
    model = create_model("ffn_resnet", num_classes=5, adaconv_init=init, width=16, layers=(1, 1, 1, 1))
    weights = [conv.weight.flatten() / (1e-3 if init == "paper" else (2 / conv.in_channels) ** 0.5)
               for block in model.blocks() for conv in block.adaconv]
    std = torch.cat(weights).std().item()
    assert 0.85 < std < 1.15, std


def test_ablations_change_only_their_part():
    tsm = create_model("tsm_resnet", num_classes=5, **TINY)
    plain = create_model("ffn_resnet", num_classes=5, private_bn=False, adaconv=False, **TINY)
    assert plain.state_dict().keys() == tsm.state_dict().keys()
    no_ada = create_model("ffn_resnet", num_classes=5, adaconv=False, **TINY)
    assert not any(".adaconv." in k for k in no_ada.state_dict())
    shared_bn = create_model("ffn_resnet", num_classes=5, private_bn=False, **TINY)
    assert not any(isinstance(m, BranchNorm) for m in shared_bn.modules())
    adaconv_params = sum(3 * b.conv1.in_channels for b in tsm.blocks())
    assert num_parameters(shared_bn) == num_parameters(tsm) + adaconv_params
    full = create_model("ffn_resnet", num_classes=5, **TINY)
    bn_params = sum(m.weight.numel() + m.bias.numel() for m in tsm.modules() if isinstance(m, nn.BatchNorm2d))
    assert num_parameters(full) == num_parameters(tsm) + adaconv_params + 2 * bn_params


@pytest.mark.parametrize("name", ["tsm_resnet", "ffn_resnet"])
@pytest.mark.parametrize("bad,match", [
    (torch.zeros(2, 3, 16, 16), r"expected a clip \(B, C=3, T, H, W\), got shape \(2, 3, 16, 16\)"),
    (torch.zeros(2, 4, 3, 16, 16), r"laid out \(B, T, C, H, W\)"),
    (torch.zeros(2, 1, 4, 16, 16), "C=3"),
    (torch.zeros(2, 3, 4, 16, 16, dtype=torch.uint8), "float"),
])
def test_a_clip_that_does_not_fit_is_a_clear_error(name, bad, match):
    model = create_model(name, num_classes=5, **TINY)
    with pytest.raises(ValueError, match=match):
        model(bad)
    if name == "ffn_resnet":
        with pytest.raises(ValueError, match=match):
            model([bad])


def test_multi_clip_t_must_be_a_trained_count():
    model = create_model("ffn_resnet", num_classes=5, **TINY)
    with pytest.raises(ValueError, match=r"trained frame count \(4, 8, 16\).*T=6"):
        model([clip(2, 4), clip(2, 6)])
    with pytest.raises(ValueError, match="non-empty list"):
        model([])


def test_create_model_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*tsm_resnet50"):
        create_model("resnet50", 5)
    with pytest.raises(ValueError, match=r"tsm_resnet50 fixes the architecture; \['width'\]"):
        create_model("tsm_resnet50", 5, width=32)
    with pytest.raises(ValueError, match="adaconv_init"):
        create_model("ffn_small", 5, adaconv_init="zero")
    with pytest.raises(ValueError, match="frame_counts"):
        create_model("ffn_small", 5, frame_counts=(4, 4, 8))
    with pytest.raises(ValueError, match="layers"):
        create_model("tsm_resnet", 5, layers=(1, 1, 1))
    assert {"tsm_resnet", "ffn_resnet", "tsm_resnet50", "ffn_resnet50", "tsm_small", "ffn_small"} <= set(list_models())


def test_prototype_cpu_network_is_expressible():
    model = create_model("tsm_resnet", num_classes=8, layers=(1, 1, 1, 1), width=8, stem_channels=32,
                         stem_stride=2, stem_pool=False, zero_init_residual=True)
    assert [b.conv1.out_channels for b in model.blocks()] == [8, 16, 32, 64]
    assert num_parameters(model) == 133_896  # 7x7 stem; tsm_small has the 3x3 stem
    assert num_parameters(create_model("tsm_small", 8)) == 130_056


def test_exact_resnet50_parameter_counts():
    tsm = create_model("tsm_resnet50", num_classes=174)
    ffn = create_model("ffn_resnet50", num_classes=174)
    assert num_parameters(tsm) == 23_864_558
    assert num_parameters(ffn) == 24_010_158
    table = {row["part"]: row for row in parameter_table(ffn)}
    assert table["norm"]["per_copy"] == 53_120 and table["norm"]["copies"] == 3
    assert table["adaconv"]["total"] == 39_360 and sum(row["total"] for row in table.values()) == 24_010_158
    assert 2 * table["norm"]["per_copy"] + table["adaconv"]["total"] == 145_600


def test_torchvision_names():
    keys = create_model("tsm_resnet50", num_classes=1000).state_dict().keys()
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.num_batches_tracked", "layer4.2.bn3.bias", "fc.weight"):
        assert key in keys
    assert len(keys) == 320  # as torchvision's resnet50: 53 convs, 53 BNs (5 tensors each), fc


def test_resnet50_flops_match_the_paper():
    for t, paper in [(4, 16.4), (8, 32.7), (16, 65.4)]:
        tsm = flops("tsm_resnet50", t) / 1e9
        assert abs(tsm - paper) < 0.06, (t, tsm)
        ffn = flops("ffn_resnet50", t) / 1e9
        assert 0 < ffn - tsm < 0.002 * tsm  # adaconv only
    model = create_model("ffn_resnet", num_classes=5, **TINY)
    assert flops(model, (4, 8, 16), FRAME) == pytest.approx(sum(flops(model, t, FRAME) for t in (4, 8, 16)))
    assert flops(model, 8, FRAME) == pytest.approx(2 * flops(model, 4, FRAME))


def test_stage_shapes():
    shapes = dict(stage_shapes(create_model("tsm_resnet50", num_classes=174), num_frames=8, frame_size=224,
                               batch_size=2))
    assert shapes["frames (B*T, C, H, W)"] == (16, 3, 224, 224)
    assert shapes["stem maxpool"] == (16, 64, 56, 56)
    assert shapes["layer4"] == (16, 2048, 7, 7)
    assert shapes["logits, mean over T"] == (2, 174)


# ------------------------------------------------------------------ deeper and wider variants
def state_digest(model):
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# Computed at af81008 (before basic blocks, ResNet-18/101 and weight_sharing existed), torch 2.13.0 on a
# CPU, torch.manual_seed(0), 8 classes: the demo's trained numbers depend on these exact init draws.
INIT_DIGESTS = [("tsm_small", {}, "099adc2d5fca04b5"), ("ffn_small", {}, "5faa785f18bb0d99"),
                ("tsm_medium", {}, "cfe9997f9c8f0528"), ("ffn_medium", {}, "4ce432ef0791f07f"),
                ("tsm_resnet50", {}, "1b3223b46a61954f"), ("ffn_resnet50", {}, "46a4ba88667641ca"),
                ("ffn_small", dict(zero_init_residual=False, adaconv_init="official"), "6f7fcdd8ed56b76b")]


@pytest.mark.parametrize("name,kwargs,digest", INIT_DIGESTS, ids=[f"{n}{'_' if k else ''}{len(k) or ''}"
                                                                   for n, k, _ in INIT_DIGESTS])
def test_existing_architectures_draw_the_same_init(name, kwargs, digest):
    torch.manual_seed(0)
    assert state_digest(create_model(name, num_classes=8, **kwargs)) == digest


def test_named_depths_are_torchvision_resnets():
    assert {"tsm_resnet18", "ffn_resnet18", "tsm_resnet101", "ffn_resnet101"} <= set(list_models())
    with torch.device("meta"):  # shapes only: free at any size
        r18, r101 = create_model("tsm_resnet18", 1000), create_model("tsm_resnet101", 1000)
    assert ARCHITECTURES["resnet18"]["block"] == "basic" and ARCHITECTURES["resnet101"]["layers"] == (3, 4, 23, 3)
    assert all(isinstance(b, BasicBlock) for b in r18.blocks()) and len(r18.blocks()) == 8
    assert all(isinstance(b, Bottleneck) for b in r101.blocks()) and len(r101.blocks()) == 33
    keys18 = r18.state_dict()
    # torchvision's resnet18: 20 convs (3 of them downsample.0), 20 BNs of 5 tensors, fc
    assert len(keys18) == 20 + 20 * 5 + 2 and len(r101.state_dict()) == 104 + 104 * 5 + 2
    for key, shape in [("layer1.0.conv1.weight", (64, 64, 3, 3)), ("layer1.1.bn2.running_var", (64,)),
                       ("layer2.0.conv1.weight", (128, 64, 3, 3)), ("layer2.0.downsample.0.weight", (128, 64, 1, 1)),
                       ("layer2.0.downsample.1.weight", (128,)), ("layer4.1.conv2.weight", (512, 512, 3, 3)),
                       ("fc.weight", (1000, 512))]:
        assert tuple(keys18[key].shape) == shape, key
    assert "layer1.0.downsample.0.weight" not in keys18 and "layer1.0.conv3.weight" not in keys18
    assert r18.layer2[0].conv1.stride == (2, 2) and r18.layer2[0].conv2.stride == (1, 1)
    assert tuple(r101.state_dict()["layer3.22.conv3.weight"].shape) == (1024, 256, 1, 1)
    with pytest.raises(ValueError, match=r"tsm_resnet18 fixes the architecture; \['block'\]"):
        create_model("tsm_resnet18", 5, block="bottleneck")
    with pytest.raises(ValueError, match="block must be one of"):
        create_model("tsm_resnet", 5, block="wide", **TINY)


def test_exact_resnet18_and_resnet101_parameter_counts():
    with torch.device("meta"):
        models = {name: create_model(name, num_classes=174) for name in
                  ("tsm_resnet18", "ffn_resnet18", "tsm_resnet101", "ffn_resnet101")}
    counts = {name: num_parameters(model) for name, model in models.items()}
    assert counts == {"tsm_resnet18": 11_265_774, "ffn_resnet18": 11_289_390,
                      "tsm_resnet101": 42_856_686, "ffn_resnet101": 43_158_958}
    for depth in ("resnet18", "resnet101"):  # FFN adds two more copies of every BN affine, 3 adaconvs per block
        tsm, ffn = models[f"tsm_{depth}"], models[f"ffn_{depth}"]
        bn = sum(m.weight.numel() + m.bias.numel() for m in tsm.modules() if isinstance(m, nn.BatchNorm2d))
        adaconv = sum(3 * b.conv1.in_channels for b in tsm.blocks())
        assert counts[f"ffn_{depth}"] == counts[f"tsm_{depth}"] + 2 * bn + adaconv
        table = {row["part"]: row for row in parameter_table(ffn)}
        assert table["adaconv"]["total"] == adaconv and table["norm"]["per_copy"] == bn


def test_shift_every_keeps_the_shift_in_every_nth_block_of_each_stage():
    with torch.device("meta"):
        r101 = create_model("tsm_resnet101", num_classes=174, shift_every=2)
        default = create_model("ffn_resnet101", num_classes=174)
    # The official TSM (make_temporal_shift, n_round = 2 for ResNet-101): block i of a stage shifts when i % 2 == 0.
    shifted = {name: [b.shift is not None for b in getattr(r101, name)] for name in ("layer1", "layer2", "layer3", "layer4")}
    assert shifted == {"layer1": [True, False, True], "layer2": [True, False, True, False],
                       "layer3": [i % 2 == 0 for i in range(23)], "layer4": [True, False, True]}
    assert sum(map(sum, shifted.values())) == 18
    assert all(b.shift is not None for b in default.blocks())  # every block by default (the FFN code)
    assert num_parameters(r101) == 42_856_686  # the shift has no parameters


def test_a_block_without_shift_keeps_frames_apart():
    model = create_model("tsm_resnet", num_classes=5, shift_every=2, **dict(TINY, layers=(2, 2, 2, 2))).eval()
    same = create_model("tsm_resnet", num_classes=5, **dict(TINY, layers=(2, 2, 2, 2))).eval()
    same.load_state_dict(model.state_dict())
    x = clip(2, 4)
    assert not torch.allclose(model(x), same(x))  # the second block of each stage no longer shifts
    block = model.layer3[1]
    frames = torch.randn(8, block.conv1.in_channels, 2, 2)  # (N*T, C, H, W), T = 4
    changed = frames.clone()
    changed[2] += 1  # frame 2 of video 0 only
    out, out_changed = block(frames, 4), block(changed, 4)
    torch.testing.assert_close(out_changed[torch.arange(8) != 2], out[torch.arange(8) != 2], rtol=0, atol=0)
    one_block = create_model("tsm_resnet", num_classes=5, shift_every=2, **TINY)  # block 0 of each stage shifts
    assert all(b.shift is not None for b in one_block.blocks())
    with pytest.raises(ValueError, match="shift_every must be an int >= 1"):
        create_model("tsm_resnet", 5, shift_every=0, **TINY)


def test_resnet18_and_resnet101_flops_match_torchvision():
    # torchvision's documented GFLOPS (multiply-adds) per 224x224 image: resnet18 1.81, resnet101 7.8
    r18, r101 = flops("tsm_resnet18", 1, num_classes=1000) / 1e9, flops("tsm_resnet101", 1, num_classes=1000) / 1e9
    assert abs(r18 - 1.81) < 0.01 and abs(r101 - 7.80) < 0.01, (r18, r101)
    # adaconv: C*H*W MACs per frame and block input, for basic blocks as for bottlenecks; at 224 the
    # ResNet-18 block inputs are 64x56x56 (x3), 128x28x28 (x2), 256x14x14 (x2), 512x7x7
    adaconv = 3 * 64 * 56 * 56 + 2 * 128 * 28 * 28 + 2 * 256 * 14 * 14 + 512 * 7 * 7
    assert flops("ffn_resnet18", 1, num_classes=1000) - flops("tsm_resnet18", 1, num_classes=1000) == adaconv
    assert flops("ffn_resnet18", 8) == pytest.approx(8 * flops("ffn_resnet18", 1))


# ------------------------------------------------------------------ FFN without weight sharing
def test_unshared_ffn_is_one_whole_tsm_per_frame_count():
    with torch.device("meta"):
        unshared = create_model("ffn_resnet50", num_classes=174, weight_sharing=False)
    assert isinstance(unshared, UnsharedFFN) and unshared.frame_counts == (4, 8, 16)
    assert num_parameters(unshared) == 71_593_674 == 3 * 23_864_558
    assert all(isinstance(b, TSMResNet) for b in unshared.branches)
    assert not any(".adaconv." in k for k in unshared.state_dict())
    tsm_keys = set(create_model("tsm_resnet", num_classes=5, **TINY).state_dict())
    keys = set(create_model("ffn_resnet", num_classes=5, weight_sharing=False, **TINY).state_dict())
    assert keys == {f"branches.{i}.{k}" for i in range(3) for k in tsm_keys}
    table = {row["part"]: row for row in parameter_table(unshared)}
    assert set(table) == {"conv", "norm", "fc"}
    assert all(row["sharing"] == "private" and row["copies"] == 3 for row in table.values())
    assert table["fc"]["per_copy"] == 2048 * 174 + 174 and table["norm"]["per_copy"] == 53_120
    assert sum(row["total"] for row in table.values()) == 71_593_674


def test_unshared_ffn_serves_each_t_with_its_nearest_network():
    model = create_model("ffn_resnet", num_classes=5, weight_sharing=False, frame_counts=(8, 2, 4), **TINY).eval()
    assert model.frame_counts == (2, 4, 8) and model.branch_for(3) == 4 and model.branch_for(6) == 8
    used = []
    for i, network in enumerate(model.branches):
        network.register_forward_hook(lambda *_, i=i: used.append(i))  # only a network's own forward()
        network.bn1.register_forward_hook(lambda *_, i=i: used.append(f"bn1 of {i}"))
    for t, branch in [(1, 0), (3, 1), (5, 1), (6, 2), (12, 2)]:
        used.clear()
        x = clip(2, t, seed=t)
        out = model(x)
        assert used == [f"bn1 of {branch}"], t
        torch.testing.assert_close(out, model.branches[branch](x), rtol=0, atol=0)  # that network, at the real T
    clips = [clip(2, t, seed=t) for t in (8, 2, 4)]
    for out, x in zip(model(clips), clips):  # the multi-clip forward: one logits per clip, in order
        torch.testing.assert_close(out, model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"trained frame count \(2, 4, 8\).*T=6"):
        model([clip(2, 6)])


def test_unshared_ffn_refuses_what_needs_sharing():
    for bad in (dict(adaconv=True), dict(private_bn=False), dict(adaconv_init="paper")):
        with pytest.raises(ValueError, match=f"weight_sharing=False.*{next(iter(bad))}"):
            create_model("ffn_small", 5, weight_sharing=False, **bad)
    model = create_model("ffn_small", 5, weight_sharing=False, adaconv=False, private_bn=True)  # consistent: fine
    assert isinstance(model, UnsharedFFN)
    with pytest.raises(ValueError, match="weight_sharing must be True or False"):
        create_model("ffn_small", 5, weight_sharing="no")
    assert isinstance(create_model("ffn_small", 5, weight_sharing=True), FFNResNet)


def test_unshared_ffn_flops_are_one_networks_per_clip():
    unshared = create_model("ffn_resnet", num_classes=5, weight_sharing=False, **TINY)
    tsm = create_model("tsm_resnet", num_classes=5, **TINY)
    for t in (4, 6, 16):
        assert flops(unshared, t, FRAME) == flops(tsm, t, FRAME)
    assert flops(unshared, (4, 8, 16), FRAME) == pytest.approx(sum(flops(tsm, t, FRAME) for t in (4, 8, 16)))
    shapes = dict(stage_shapes(unshared, num_frames=8, frame_size=FRAME))
    assert shapes["logits, mean over T"] == (1, 5)
