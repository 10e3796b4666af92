"""The training step: the ffn recipe one clip at a time, with the gradients of the joint loss, one
clip's activations alive at a time, the NaN guard before the weights change, and DDP's no_sync around
all clips but the last; FFN without temporal distillation (CE on every branch, no KL); the paper's
Mixed Sampling (the mixing, its probability, the network seeing the larger T only)."""
import contextlib
import copy
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ffnlib.train.setup as setup
import ffnlib.train.step as loop
from ffnlib.train import NonFiniteLoss, TrainConfig
from ffnlib.train.distributed import World
from ffnlib.train.optim import make_optimizer

CPU = torch.device("cpu")


def config_for(recipe: str, frame_counts=(4, 8, 16), **changes) -> TrainConfig:
    return TrainConfig.from_dict({**dict(recipe=recipe, arch="small", frame_counts=list(frame_counts), dropout=0.0,
                                         lam=0.7, batch_size=4), **changes})


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
                                  distill=config.distill, lam=config.lam)


@pytest.mark.parametrize("recipe, changes", [
    ("ffn", {}),
    ("ffn", {"model_kwargs": {"shift_mode": "official"}}),
    ("ffn", {"private_bn": False}),
    ("ffn", {"distill": False}),
    ("ffn", {"weight_sharing": False}),
])
def test_per_clip_step_has_the_gradients_of_the_joint_loss(recipe, changes):
    torch.manual_seed(0)
    config = config_for(recipe, **changes)
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
    if changes.get("private_bn", True):  # each branch's BN sees its clip once either way
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


# ------------------------------------------------------------------------------------------ w/o TD
def test_without_distillation_every_branch_learns_from_its_own_cross_entropy():
    """Table 4's w/o TD: the loss is the sum of each branch's CE on its clip, no KL; every branch's
    private BNs get gradients from it (with distillation only the KL would reach the students)."""
    torch.manual_seed(0)
    config = config_for("ffn", distill=False)
    model = setup.build_model(config, num_classes=5).train()
    batch = batch_for(config)
    reference = copy.deepcopy(model)
    loss, parts, _ = per_clip_step(config, model, batch)
    assert list(parts) == ["ce_4", "ce_8", "ce_16"]
    with torch.no_grad():
        ces = [F.cross_entropy(reference([clip])[0], batch[-1]) for clip in batch[:-1]]
    torch.testing.assert_close(loss, sum(ces))
    for (t, part), ce in zip(parts.items(), ces):
        torch.testing.assert_close(part, ce, msg=t)
    for branch in range(3):
        assert model.bn1[branch].weight.grad.abs().sum() > 0, f"branch {branch} learnt nothing"


# ------------------------------------------------------------------------------------------ mixed sampling
def test_mix_frames_mixes_the_low_clip_into_consecutive_frames_of_the_high_clip():
    g = torch.Generator().manual_seed(0)
    low, high = torch.randn(3, 2, 4, 5, 5, generator=g), torch.randn(3, 2, 16, 5, 5, generator=g)
    plan = loop.MixPlan(start=torch.tensor([0, 12, 5]), weight=torch.tensor([0.25, 1.0, 0.5]))
    out = loop.mix_frames(low, high, plan)
    assert out.shape == high.shape and not torch.equal(out, high)
    for b, (start, weight) in enumerate(zip(plan.start.tolist(), plan.weight.tolist())):
        window = slice(start, start + 4)
        torch.testing.assert_close(out[b, :, window], weight * low[b] + (1 - weight) * high[b, :, window])
        rest = [t for t in range(16) if not start <= t < start + 4]
        assert torch.equal(out[b, :, rest], high[b, :, rest])  # the other 12 frames untouched
    with pytest.raises(ValueError, match="not the smaller and larger T of the same videos"):
        loop.mix_frames(high, low, plan)


def test_mixup_plan_mixes_with_probability_rho_and_the_same_on_any_number_of_ranks():
    config = config_for("mixed", frame_counts=(4, 16), mixup_prob=0.75, batch_size=6, seed=3)
    plans = [loop.mixup_plan(config, step, 6) for step in range(400)]
    assert 0.70 < np.mean([p is not None for p in plans]) < 0.80
    mixed = [p for p in plans if p is not None]
    starts = torch.cat([p.start for p in mixed])
    assert starts.min() == 0 and starts.max() == 12  # any 4 consecutive frames of 16
    weights = torch.cat([p.weight for p in mixed])
    assert 0 <= weights.min() and weights.max() <= 1 and abs(weights.mean().item() - 0.5) < 0.05  # Beta(1, 1)
    step = next(i for i, p in enumerate(plans) if p is not None)
    whole = loop.mixup_plan(config, step, 6)
    halves = [loop.mixup_plan(config, step, 3, World(rank, 2)) for rank in range(2)]
    for rank, half in enumerate(halves):  # rank r takes videos r, r + 2, r + 4 of the global batch
        assert torch.equal(half.start, whole.start[rank::2]) and torch.equal(half.weight, whole.weight[rank::2])
    never = config_for("mixed", frame_counts=(4, 16), mixup_prob=0.0)
    assert all(loop.mixup_plan(never, s, 4) is None for s in range(50))


def test_the_mixed_step_feeds_the_network_16_frame_clips_only_mixed_as_planned():
    config = config_for("mixed", frame_counts=(4, 16), mixup_prob=0.5)
    model = setup.build_model(config, num_classes=5)
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = batch_for(config)
    outcomes = []
    for step in range(6):
        loss, parts, logits, target = loop.train_step(model, optimizer, scaler, batch, config, CPU, None, step=step)
        assert torch.equal(target, batch[-1])  # labels unchanged
        plan = loop.mixup_plan(config, step, 4)
        expected = batch[1] if plan is None else loop.mix_frames(batch[0], batch[1], plan)
        assert seen[-1].shape == (4, 3, 16, 16, 16) and torch.equal(seen[-1], expected)
        assert parts["mixup"].item() == float(plan is not None)
        outcomes.append(plan is not None)
    assert len(seen) == 6 and True in outcomes and False in outcomes  # one forward per step, of the 16F clip
