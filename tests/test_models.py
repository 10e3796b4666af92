"""TSM-ResNet, FFN-ResNet and create_model: shapes, gradients, FFN = TSM when its parts are neutral,
the branch table, ablations, clear errors, exact parameter counts, FLOPs."""
import pytest
import torch
from torch import nn

from ffnlib.losses import temporal_distillation_by_count
from ffnlib.models import (BranchNorm, FFNResNet, create_model, flops, list_models,
                           load_imagenet, nearest_count, num_parameters, parameter_table, stage_shapes)

# A network small enough for many forward passes: 16x16 frames -> 8x8 after the stem -> 1x1 in layer4.
TINY = dict(layers=(1, 1, 1, 1), width=4, stem_channels=16, stem_kernel=3, stem_stride=2, stem_pool=False)
FRAME = 16
VARIANTS = [("tsm_resnet", TINY), ("ffn_resnet", TINY), ("tsm_small", {}), ("ffn_small", {}),
            ("tsm_resnet", dict(TINY, layers=(2, 1, 1, 2), stem_pool=True, stem_kernel=7)),
            ("ffn_resnet", dict(TINY, private_bn=False)), ("ffn_resnet", dict(TINY, adaconv=False))]
IDS = ["tsm_tiny", "ffn_tiny", "tsm_small", "ffn_small", "tsm_tiny_pool", "ffn_shared_bn", "ffn_no_adaconv"]


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
    per_frame = model.fc(features)  # (B, T, classes)
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
                                         ("ffn_resnet", dict(private_bn=False)), ("ffn_resnet", dict(adaconv=False))])
def test_gradients_reach_every_parameter(name, kwargs):
    model = create_model(name, num_classes=5, zero_init_residual=False, **TINY, **kwargs).train()
    target = torch.tensor([1, 3])
    if isinstance(model, FFNResNet):
        clips = [clip(2, t, seed=t) for t in model.frame_counts]
        loss = temporal_distillation_by_count(dict(zip(model.frame_counts, model(clips))), target).total
    else:
        loss = nn.functional.cross_entropy(model(clip(2, 8)), target)
    loss.backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, key


def test_zero_init_residual_zeroes_every_copy_of_the_last_bn():
    for name in ("tsm_resnet", "ffn_resnet"):
        model = create_model(name, num_classes=5, zero_init_residual=True, **TINY)
        for block in model.blocks():
            norms = block.bn3 if isinstance(block.bn3, BranchNorm) else [block.bn3]
            assert all(torch.count_nonzero(n.weight) == 0 for n in norms)
        assert torch.count_nonzero(model.bn1.weight if name == "tsm_resnet" else model.bn1[0].weight) > 0


def test_fc_init():
    model = create_model("tsm_resnet50", num_classes=174)
    assert torch.count_nonzero(model.fc.bias) == 0
    assert 0.0008 < model.fc.weight.std().item() < 0.0012


def tsm_and_equivalent_ffn(frame_counts=(4, 8, 16), **kwargs):
    """A TSM and an FFN whose BN copies all equal the TSM's BNs (running stats too), adaconv zero."""
    tsm = create_model("tsm_resnet", num_classes=5, **TINY, **kwargs)
    with torch.no_grad():  # non-trivial BN parameters and statistics
        for m in tsm.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
        tsm.fc.weight.normal_(0, 0.1)
    ffn = create_model("ffn_resnet", num_classes=5, frame_counts=frame_counts, **TINY, **kwargs)
    load_imagenet(ffn, tsm.state_dict())
    with torch.no_grad():
        ffn.fc.load_state_dict(tsm.fc.state_dict())
        for block in ffn.blocks():
            for conv in block.adaconv:
                conv.weight.zero_()
    return tsm, ffn


@pytest.mark.parametrize("train", [False, True])
def test_neutral_ffn_is_exactly_tsm(train):
    tsm, ffn = tsm_and_equivalent_ffn(dropout=0.0)
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


@pytest.mark.parametrize("mode,mixes", [("per_branch", False), ("official", True)])
def test_official_shift_mode_mixes_videos_only_when_asked(mode, mixes):
    model = create_model("ffn_resnet", num_classes=5, shift_mode=mode, dropout=0.0, **TINY).train()
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
