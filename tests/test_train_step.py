"""The training step of the multi-clip recipes (ffn, mixed): one clip at a time, with the gradients of
the joint loss, one clip's activations alive at a time, the NaN guard before the weights change, and
DDP's no_sync around all clips but the last."""
import contextlib
import copy
import weakref

import pytest
import torch

import ffnlib.train.setup as setup
import ffnlib.train.step as loop
from ffnlib.train import NonFiniteLoss, TrainConfig
from ffnlib.train.distributed import World
from ffnlib.train.optim import make_optimizer

CPU = torch.device("cpu")


def config_for(recipe: str, frame_counts=(4, 8, 16), **model_kwargs) -> TrainConfig:
    return TrainConfig(recipe=recipe, arch="small", frame_counts=list(frame_counts), dropout=0.0, lam=0.7,
                       batch_size=4, model_kwargs=model_kwargs)


def batch_for(config: TrainConfig, num_classes: int = 5, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clips = [torch.randn(config.batch_size, 3, t, size, size, generator=g) for t in config.frame_counts]
    return (*clips, torch.randint(num_classes, (config.batch_size,), generator=g))


def step_model_for(config: TrainConfig, model):
    return loop.step_module(model, config, World(), CPU)  # as fit builds it for one process


def joint_step(config, model, batch):
    """The reference: one forward of all clips, one backward of the summed loss."""
    loss, parts, logits, _ = loop.compute_loss(step_model_for(config, model), batch, config, CPU)
    loss.backward()
    return loss.detach(), parts, logits.detach()


def per_clip_step(config, model, batch):
    *clips, target = batch
    return loop.backward_per_clip(step_model_for(config, model), dict(zip(config.frame_counts, clips)), target,
                                  distill=config.recipe == "ffn", lam=config.lam)


@pytest.mark.parametrize("recipe, model_kwargs", [
    ("ffn", {}),
    ("ffn", {"shift_mode": "official"}),
    ("ffn", {"private_bn": False}),
    ("mixed", {}),
])
def test_per_clip_step_has_the_gradients_of_the_joint_loss(recipe, model_kwargs):
    torch.manual_seed(0)
    config = config_for(recipe, **model_kwargs)
    joint_model = setup.build_model(config, num_classes=5).train()
    per_clip_model = copy.deepcopy(joint_model)
    batch = batch_for(config)
    loss, parts, logits = joint_step(config, joint_model, batch)
    loss_pc, parts_pc, logits_pc = per_clip_step(config, per_clip_model, batch)

    torch.testing.assert_close(loss_pc, loss)
    assert list(parts_pc) == list(parts)
    for key in parts:
        torch.testing.assert_close(parts_pc[key], parts[key])
    torch.testing.assert_close(logits_pc, logits)
    grads = dict(joint_model.named_parameters())
    for name, p in per_clip_model.named_parameters():
        assert (p.grad is None) == (grads[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)
    if model_kwargs.get("private_bn", True) and recipe == "ffn":  # each branch's BN sees its clip once either way
        buffers = dict(joint_model.named_buffers())
        for name, b in per_clip_model.named_buffers():
            torch.testing.assert_close(b, buffers[name], msg=name)


def test_teacher_goes_first_and_each_forward_takes_one_clip():
    config = config_for("ffn")
    model = setup.build_model(config, num_classes=5)
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append([c.shape[2] for c in args[0]]))
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loop.train_step(model, optimizer, scaler, batch_for(config), config, CPU, None)
    assert seen == [[16], [4], [8]]


def test_only_the_last_clip_reduces_gradients_under_ddp():
    """DDP's no_sync is entered around every clip but the last (two gloo ranks check the sums:
    test_train_ddp.py)."""
    config = config_for("ffn")
    model = setup.build_model(config, num_classes=5)
    events = []
    model.register_forward_pre_hook(lambda _m, args: events.append(("forward", args[0][0].shape[2])))

    @contextlib.contextmanager
    def no_sync():
        events.append("no_sync")
        yield
        events.append("sync again")

    model.no_sync = no_sync  # what DDP has
    optimizer = make_optimizer(model, config)
    loop.train_step(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), batch_for(config), config, CPU,
                    None, World(world_size=2), check_finite=False)
    assert events == ["no_sync", ("forward", 16), "sync again", "no_sync", ("forward", 4), "sync again",
                      ("forward", 8)]


class _Held:
    """What autograd keeps in place of a saved tensor (a list cannot be weakly referenced)."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


class SavedBytes:
    """Bytes of the tensors autograd holds for backward, now and at most, while in use."""

    def __init__(self):
        self.now = self.peak = 0

    def _pack(self, t: torch.Tensor):
        size = t.numel() * t.element_size()
        holder = _Held(t)
        self.now += size
        self.peak = max(self.peak, self.now)
        weakref.finalize(holder, self._release, size)  # the graph that saved it is freed: so is the holder
        return holder

    def _release(self, size: int) -> None:
        self.now -= size

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda holder: holder.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


def test_per_clip_step_holds_one_clip_of_activations_at_a_time():
    config = config_for("ffn")
    model = setup.build_model(config, num_classes=5).train()
    batch = batch_for(config)
    with SavedBytes() as joint:
        joint_step(config, model, batch)
    with SavedBytes() as per_clip:
        per_clip_step(config, model, batch)
    with SavedBytes() as teacher_alone:
        torch.nn.functional.cross_entropy(model([batch[2]])[0], batch[-1]).backward()
    assert joint.now == per_clip.now == 0  # the counter itself sees every graph freed
    assert per_clip.peak <= 1.01 * teacher_alone.peak  # the 16F clip's graph, nothing of the others
    assert joint.peak > 1.5 * per_clip.peak  # 28 frames against 16


def test_non_finite_per_clip_loss_stops_before_the_weights_change():
    config = config_for("ffn")
    model = setup.build_model(config, num_classes=5)
    with torch.no_grad():
        model.bn1[0].weight[0] = float("nan")  # the 4F branch only: the teacher's loss stays finite
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss \(nan\) at step 7"):
        loop.train_step(model, optimizer, scaler, batch_for(config), config, CPU, None, where="at step 7")
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, before[name], equal_nan=True, msg=name)


def test_per_clip_step_under_autocast_computes_the_losses_as_the_joint_step():
    """bf16 autocast on the CPU: the same loss parts, in float32, as the joint step. (On CUDA autocast also
    runs the teacher's softmax in float32, which is why the per-clip step computes it inside autocast;
    CPU autocast keeps softmax in bf16, so this test cannot tell where it is computed.)"""
    torch.manual_seed(0)
    config = config_for("ffn")
    model = setup.build_model(config, num_classes=5).train()
    torch.nn.init.normal_(model.fc.weight, 0, 1.0)  # spread-out probabilities, where bf16 rounding shows
    batch = batch_for(config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, parts, _, _ = loop.compute_loss(model, batch, config, CPU)
    *clips, target = batch
    _, parts_pc, _ = loop.backward_per_clip(model, dict(zip(config.frame_counts, clips)), target, distill=True,
                                            lam=config.lam,
                                            autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    for key in parts:
        assert parts_pc[key].dtype == parts[key].dtype == torch.float32, key
        torch.testing.assert_close(parts_pc[key], parts[key], rtol=1e-5, atol=1e-6, msg=key)
