"""What `ffnlib.train.setup` builds from a config: FFN's switches reach the network (w/o Weight Sharing:
a network per T), and the finetune recipe starts from the weights of the model it names."""
import pytest
import torch

from ffnlib.errors import ConfigError
from ffnlib.models import FFNResNet, UnsharedFFN, create_model, num_parameters
from ffnlib.runs import ModelRun
from ffnlib.train import TrainConfig, fit, load_checkpoint
from ffnlib.train.setup import Trainee, build_model, finetune_source, model_kwargs


def test_ffn_switches_reach_the_network_and_tsms_never_see_them():
    base = dict(recipe="ffn", arch="small")
    assert model_kwargs(TrainConfig.from_dict({**base, "private_bn": False})) == {
        "frame_counts": (4, 8, 16), "private_bn": False, "adaconv": True}
    network = build_model(TrainConfig.from_dict({**base, "adaconv": False}), num_classes=5)
    assert isinstance(network, FFNResNet) and not network.adaconv and network.private_bn
    tsm = TrainConfig.from_dict({"arch": "small", "private_bn": False, "weight_sharing": False})  # inert keys
    assert model_kwargs(tsm) == {}


def test_without_weight_sharing_each_t_has_its_own_convolutions():
    config = TrainConfig.from_dict(dict(recipe="ffn", arch="small", weight_sharing=False))
    network = build_model(config, num_classes=5)
    assert isinstance(network, UnsharedFFN) and len(network.branches) == 3
    assert num_parameters(network) == 3 * num_parameters(create_model("tsm_small", 5))
    convs = [dict(b.named_parameters())["conv1.weight"] for b in network.branches]
    assert len({c.data_ptr() for c in convs}) == 3  # three tensors, not one shared
    before = [c.detach().clone() for c in convs]
    clips = [torch.randn(2, 3, t, 16, 16) for t in (4, 8, 16)]
    torch.nn.functional.cross_entropy(network([clips[0]])[0], torch.tensor([0, 1])).backward()
    assert convs[0].grad is not None and convs[1].grad is None and convs[2].grad is None  # the 4F clip: its own
    assert all(torch.equal(a, b) for a, b in zip(convs, before))


def small(root, **changes) -> TrainConfig:
    values = dict(data_root=str(root), arch="small", frame_size=32, resize_size=36, num_workers=0, epochs=1,
                  batch_size=4, steps_per_epoch=2, lr=0.05, eval_frames=[4], val_max_videos=4, threads=1,
                  deterministic=True)
    return TrainConfig.from_dict({**values, **changes})


def test_finetune_starts_from_the_named_models_weights(tiny_root, tmp_path, torch_state):
    run = tmp_path / "run"
    source = fit(small(tiny_root, num_frames=8), run / "models" / "vanilla_16f", progress=False)
    assert source.model_dir.name == "vanilla_16f"
    config = small(tiny_root, recipe="finetune", num_frames=4, init_from="vanilla_16f", lr=0.0)
    assert config.model_name == "finetune_4f"
    result = fit(config, run / "models" / config.model_name, progress=False)
    best = load_checkpoint(ModelRun(source.model_dir).best)
    tuned = load_checkpoint(ModelRun(result.model_dir).final)
    params = {name for name, _ in result.model.named_parameters()}
    for name in params:  # lr 0: the fine-tuned weights are the source's (a fresh init would differ)
        assert torch.equal(tuned["model"][name], best["model"][name]), name
    assert tuned["init"] == {"path": str(ModelRun(source.model_dir).best), "checkpoint_id": best["checkpoint_id"],
                             "step": best["step"]}
    again = fit(config, run / "models" / config.model_name, progress=False)  # finished: not trained again
    assert again.history == result.history


def test_a_missing_or_unfinished_source_is_named_before_training(tiny_root, tmp_path):
    config = small(tiny_root, recipe="finetune", num_frames=4, init_from="vanilla_16f")
    with pytest.raises(ConfigError, match=r"init_from='vanilla_16f': .*models/vanilla_16f is not trained: train it first"):
        fit(config, tmp_path / "run" / "models" / "finetune_4f", progress=False)
    unfinished = ModelRun(tmp_path / "run" / "models" / "vanilla_16f")
    unfinished.checkpoints.mkdir(parents=True)
    unfinished.last.write_bytes(b"")
    with pytest.raises(ConfigError, match="is still training"):
        finetune_source(config, tmp_path / "run" / "models" / "finetune_4f")
    with pytest.raises(ConfigError, match="is not in a run's models/ folder"):
        finetune_source(config, tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="no checkpoint file"):
        finetune_source(config.replace(init_from="nowhere/best.pt"), tmp_path / "elsewhere")


@pytest.mark.parametrize("changes, frames", [
    ({"recipe": "vanilla", "num_frames": 8}, 8),
    ({"recipe": "finetune", "num_frames": 4}, 4),
    ({"recipe": "ffn", "frame_counts": [4, 8, 16]}, 28),
    ({"recipe": "mixed", "frame_counts": [4, 16]}, 16),  # the 4F clip is mixed into the 16F one
    ({"recipe": "proportional", "frame_counts": [4, 16]}, None),  # one T per step: the batch says which
])
def test_frames_the_network_sees_per_video_in_a_step(changes, frames):
    config = TrainConfig(arch="small", device="cpu", **changes)
    assert Trainee.build(config, num_classes=4, device=torch.device("cpu")).frames_per_clip == frames
