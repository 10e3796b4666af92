"""Official TSM/FFN checkpoints: state dicts built by the official code's naming rules (written down
in official_layouts.py from ops/backbone/resnet_TSM_FFN.py, resnet_TSM.py and the TSM repository's
ops/temporal_shift.py, not from ffnlib's mapping), saved as main.py / main_FFN.py save them, loaded,
and checked tensor by tensor through the ffnlib modules. Logit parity with the official code itself
was checked outside the repository against the official model code (README, "The official checkpoints")."""
from __future__ import annotations

import pytest
import torch

from ffnlib.models import BranchNorm, OfficialCheckpointError, create_model, load_official_checkpoint
from ffnlib.models import official
from official_layouts import COUNTS, R101, official_shapes, random_state, save_official

NUM_CLASSES = 7


class NotATensor:  # pickled into a checkpoint, which weights_only=True must refuse
    pass


LAYOUT_FILES = {"ffn": "tsm_ffn_sthv2.pth.tar", "tsm": "tsm_sthv2.pth.tar",
                "tsm_repo": "TSM_somethingv2_RGB_resnet50_shift8_blockres_avg_segment16_e45.pth"}


@pytest.fixture(scope="module")
def states():
    return {layout: random_state(official_shapes(layout, num_classes=NUM_CLASSES), seed)
            for seed, layout in enumerate(LAYOUT_FILES)}


@pytest.fixture(scope="module")
def loaded(states, tmp_path_factory):
    """Each layout saved as the official code saves it, then loaded (once: ResNet-50 files are 100 MB)."""
    folder = tmp_path_factory.mktemp("official")
    models = {}
    for layout, name in LAYOUT_FILES.items():
        save_official(folder / name, states[layout])
        models[layout] = load_official_checkpoint(folder / name)
    return models


def model_tensor(model, key: str) -> torch.Tensor:
    """The ffnlib tensor an official key must land in, found through the modules (not by key text)."""
    if key.startswith("new_fc."):
        return getattr(model.fc, key.split(".")[-1])
    parts = key.split(".")[1:]  # without base_model
    module, leaf = model, parts[-1]
    for part in parts[:-1]:
        if part == "net":  # TemporalShift(net=conv1) in the TSM repository: ffnlib's conv1 itself
            continue
        name, _, count = part.rpartition("_")
        if count.isdigit() and name in ("bn1", "bn2", "bn3", "adaconv", "downsample_bn"):
            index = sorted(COUNTS).index(int(count))
            module = module.downsample[1][index] if name == "downsample_bn" else getattr(module, name)[index]
        elif part == "downsample_conv":
            module = module.downsample[0]
        elif part.isdigit():
            module = module[int(part)]
        else:
            module = getattr(module, part)
    return getattr(module, leaf)


@pytest.mark.parametrize("layout, family", [("ffn", "ffn"), ("tsm", "tsm"), ("tsm_repo", "tsm")])
def test_every_official_tensor_lands_in_its_ffnlib_tensor(states, loaded, layout, family):
    state, model = states[layout], loaded[layout]
    assert not model.training
    assert type(model).__name__ == ("FFNResNet" if family == "ffn" else "TSMResNet")
    set_tensors = set()
    for key, value in state.items():
        target = model_tensor(model, key)
        assert torch.equal(target, value.to(target.dtype)), key
        set_tensors.add(target.data_ptr())
    own = model.state_dict()
    assert set_tensors == {t.data_ptr() for t in own.values()}, "some model tensor got nothing from the file"
    spec = model.official
    assert (spec.family, spec.depth, spec.num_classes, spec.epoch, spec.best_prec1) == (family, 50, NUM_CLASSES, 50, 63.61)
    assert spec.layout == ("tsm_repo" if layout == "tsm_repo" else "ffn_repo")
    assert spec.frame_counts == (COUNTS if family == "ffn" else ())
    assert spec.num_frames == (16 if layout == "tsm_repo" else None)  # from the TSM repo's file name
    if family == "ffn":
        assert (model.frame_counts, model.adaconv_init, model.shift_mode) == (COUNTS, "official", "official")


def test_ffn_branches_are_the_official_counts_at_any_t(states, loaded):
    """At T = 4 the 4F BatchNorms and adapter serve the clip, at 6 the 8F ones (ties to the larger)."""
    model = loaded["ffn"]
    block = model.layer1[0]
    for t, count in ((2, 4), (4, 4), (5, 4), (6, 8), (12, 16), (20, 16)):
        index = model.frame_counts.index(model.branch_for(t))
        assert torch.equal(block.bn2[index].running_var, states["ffn"][f"base_model.layer1.0.bn2_{count}.running_var"]), t
        assert torch.equal(block.adaconv[index].weight, states["ffn"][f"base_model.layer1.0.adaconv_{count}.weight"]), t


def test_bare_weights_without_module_prefix_and_a_dropout_free_classifier_load(tmp_path, states):
    """A file holding the weights alone, saved without DataParallel, with dropout 0 (the TSN keeps the
    ResNet's own fc as the classifier: base_model.fc)."""
    state = {("base_model.fc." + k[len("new_fc."):] if k.startswith("new_fc.") else k): v
             for k, v in states["tsm"].items()}
    torch.save(state, tmp_path / "bare.pth")
    model = load_official_checkpoint(tmp_path / "bare.pth")
    assert torch.equal(model.fc.weight, state["base_model.fc.weight"])
    assert model.official.epoch is None and model.official.best_prec1 is None


def test_missing_num_batches_tracked_is_no_error(states):
    state = {k: v for k, v in states["tsm"].items() if not k.endswith("num_batches_tracked")}
    spec = official.inspect_official(state, {}, "old.pth")
    model = official.build_model(spec)
    official.load_official_state_dict(model, spec, state)
    assert torch.equal(model.layer4[2].bn3.running_var, state["base_model.layer4.2.bn3.running_var"])


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("base_model.layer2.1.bn2_8.running_mean"),
     r"lacks 1: base_model\.layer2\.1\.bn2_8\.running_mean"),
    (lambda s: s.update({"base_model.layer1.0.adaconv_32.weight": torch.zeros(64, 1, 1, 1)}),
     r"no model tensor takes 1: base_model\.layer1\.0\.adaconv_32\.weight"),
    (lambda s: s.update({"base_model.layer3.2.conv2.weight": torch.zeros(256, 256, 1, 1)}),
     r"do not fit 1: base_model\.layer3\.2\.conv2\.weight \(256, 256, 1, 1\) "
     r"\(model layer3\.2\.conv2\.weight \(256, 256, 3, 3\)\)"),
])
def test_keys_and_shapes_that_do_not_fit_are_named_and_change_nothing(states, loaded, change, message):
    state = dict(states["ffn"])
    change(state)
    model = loaded["ffn"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = official.inspect_official(state, {}, "/data/tsm_ffn.pth")
    with pytest.raises(OfficialCheckpointError, match=r"/data/tsm_ffn\.pth: does not fit ffn_resnet50 .*" + message):
        official.load_official_state_dict(model, spec, state)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "pickled.pth"
    save_official(path, {"new_fc.weight": torch.zeros(2, 4)}, args=NotATensor())
    with pytest.raises(OfficialCheckpointError, match=r"pickled object \(.*NotATensor\) that weights_only=True refuses"):
        load_official_checkpoint(path)


def test_an_ffnlib_checkpoint_is_named_as_such(tmp_path):
    path = tmp_path / "best.pt"
    model = create_model("tsm_small", 4)
    torch.save({"model": model.state_dict(), "config": {"recipe": "vanilla"}, "num_classes": 4, "step": 3}, path)
    with pytest.raises(OfficialCheckpointError, match="is an ffnlib checkpoint .*load_trained"):
        load_official_checkpoint(path)


@pytest.mark.parametrize("content, message", [
    (lambda: {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 2048)},
     r"keys outside the official TSN wrapper .*torchvision ImageNet ResNet"),
    (lambda: [torch.zeros(2)], "expected a dict with a 'state_dict' entry, got list"),
    (lambda: {"state_dict": {"module.new_fc.weight": torch.zeros(2, 2), "new_fc.bias": torch.zeros(2)}},
     "some keys start with 'module.' and some do not"),
    (lambda: {"epoch": 3, "best_prec1": 1.0}, r"expected a dict with a 'state_dict' entry .*got entries best_prec1, epoch"),
])
def test_files_that_are_not_official_checkpoints(tmp_path, content, message):
    path = tmp_path / "x.pth"
    torch.save(content(), path)
    with pytest.raises(OfficialCheckpointError, match=message):
        load_official_checkpoint(path)
    with pytest.raises(OfficialCheckpointError, match="no such file"):
        load_official_checkpoint(tmp_path / "absent.pth")


def test_the_file_is_read_on_the_cpu_with_weights_only(tmp_path, monkeypatch):
    """The released files hold CUDA tensors: map_location='cpu' lets a CPU-only machine read them."""
    save_official(tmp_path / "f.pth", {"new_fc.weight": torch.zeros(2, 4)})
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    with pytest.raises(OfficialCheckpointError, match="expected a ResNet"):  # read, then found wanting
        load_official_checkpoint(tmp_path / "f.pth")
    assert calls == [{"map_location": "cpu", "weights_only": True}]


def test_keywords_that_contradict_the_weights_are_refused(loaded):
    spec = loaded["ffn"].official
    with pytest.raises(OfficialCheckpointError,
                       match=r"the weights imply frame_counts=\(4, 8, 16\); got frame_counts=\(4, 16\)"):
        official.build_model(spec, frame_counts=(4, 16))
    assert official.build_model(spec, dropout=0.3, frame_counts=COUNTS).dropout.p == 0.3


def _shapes_only(shapes: dict) -> dict:
    """Key detection needs no real sizes: a 1-element tensor per key (the classifier keeps its rows)."""
    return {k: torch.zeros(s if k.startswith("new_fc") else (1,)) for k, s in shapes.items()}



@pytest.mark.parametrize("layout, stages, every, depth, kwargs", [
    ("tsm_repo", R101, 2, 101, {"shift_every": 2}),  # the TSM repo's ResNet-101: n_round = 2
    ("tsm_repo", R101, 1, 101, {}),
    ("tsm", R101, 1, 101, {}),  # the FFN repo's ResNet-101 shifts in every block
    ("ffn", R101, 1, 101, {**official.FFN_IMPLIED, "frame_counts": COUNTS}),
])
def test_depth_and_shift_placement_are_detected(layout, stages, every, depth, kwargs):
    spec = official.inspect_official(_shapes_only(official_shapes(layout, stages, every)), {}, "f.pth")
    assert (spec.depth, spec.model_kwargs, spec.model_name) == (depth, kwargs, f"{spec.family}_resnet{depth}")


def test_an_irregular_shift_placement_and_unknown_architectures_are_errors():
    state = _shapes_only(official_shapes("tsm_repo"))  # every block shifted, but for layer1.1
    state["base_model.layer1.1.conv1.weight"] = state.pop("base_model.layer1.1.conv1.net.weight")
    with pytest.raises(OfficialCheckpointError, match=r"f\.pth: shifts blocks .*neither every block nor every other"):
        official.inspect_official(state, {}, "f.pth")
    odd = _shapes_only(official_shapes("tsm", ((64, 2), (128, 2), (256, 2), (512, 2))))
    with pytest.raises(OfficialCheckpointError, match=r"bottleneck blocks \(2, 2, 2, 2\) is none of"):
        official.inspect_official(odd, {}, "f.pth")
    with pytest.raises(OfficialCheckpointError, match="its 'arch' says resnet101 but its weights are a ResNet-50"):
        official.inspect_official(_shapes_only(official_shapes("tsm")), {"arch": "resnet101"}, "f.pth")


@pytest.mark.parametrize("name, message", [
    ("TSM_kinetics_RGB_resnet50_avg_segment5_e50.pth", "is a TSN of the TSM repository"),
    ("TSM_kinetics_Flow_resnet50_shift8_blockres_avg_segment8_e50.pth", "optical-flow model"),
])
def test_tsm_repository_models_ffnlib_cannot_run_are_named_by_their_file_name(name, message):
    with pytest.raises(OfficialCheckpointError, match=message):
        official.inspect_official(_shapes_only(official_shapes("tsm")), {}, name)


def test_a_checkpoint_needing_a_model_ffnlib_lacks_says_which(monkeypatch):
    spec = official.inspect_official(_shapes_only(official_shapes("tsm")), {}, "f.pth")
    monkeypatch.setattr(official, "list_models", lambda: ["tsm_small"])
    with pytest.raises(OfficialCheckpointError, match="ffnlib has no 'tsm_resnet50'"):
        official.build_model(spec)


def test_branch_norms_are_what_the_mapping_expects():
    """The mapping finds FFN's private BatchNorms as BranchNorm modules; guard that assumption."""
    model = create_model("ffn_small", 3)
    assert isinstance(model.bn1, BranchNorm) and isinstance(model.layer2[0].downsample[1], BranchNorm)


def test_a_tsm_repository_file_name_gives_the_fold_and_the_training_t():
    state = _shapes_only(official_shapes("tsm_repo"))
    spec = official.inspect_official(state, {}, "/d/TSM_somethingv2_RGB_resnet50_shift4_blockres_avg_segment8_e45.pth")
    assert (spec.model_kwargs, spec.num_frames) == ({"fold_div": 4}, 8)
    other = official.inspect_official(state, {}, "/d/my_tsm_shift4_segment8.pth")  # not the TSM repo's pattern
    assert (other.model_kwargs, other.num_frames) == ({}, None)
