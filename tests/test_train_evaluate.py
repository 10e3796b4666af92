import pandas as pd
import torch

from ffnlib.datasets import SSv2
from ffnlib.models import create_model
from ffnlib.train import evaluate, recalibrate_bn
from ffnlib.train.evaluate import TABLE_COLUMNS, frame_count_groups, shuffle_time

SIZES = dict(frame_size=32, resize_size=36)


def test_long_table_at_any_frame_count(tiny_root):
    source = SSv2(tiny_root, "validation")
    model = create_model("ffn_small", num_classes=source.num_classes, frame_counts=(4, 8))
    result = evaluate(model, source, [2, 5, 12], batch_size=8, name="ffn", train_frames="4/8",
                      progress=False, **SIZES)
    assert list(result.table.columns) == TABLE_COLUMNS
    assert result.table["eval_frames"].tolist() == [2, 5, 12]
    assert (result.table["n"] == len(source)).all() and (result.table["model"] == "ffn").all()
    assert ((0 <= result.table["top1"]) & (result.table["top1"] <= result.table["top5"])
            & (result.table["top5"] <= 100)).all()
    per_class = result.per_class
    assert len(per_class) == 3 * source.num_classes
    assert per_class.groupby("eval_frames")["n"].sum().tolist() == [len(source)] * 3
    assert model.training  # evaluation leaves the model in the mode it found it


def test_frame_counts_are_grouped_into_decoding_passes():
    assert frame_count_groups([2, 3, 4, 6, 8, 12, 16]) == [[2, 3, 4, 6, 8], [12, 16]]
    assert frame_count_groups([16, 4, 8, 4]) == [[4, 8, 16]]
    assert frame_count_groups([8, 40], frames_per_pass=32) == [[8], [40]]
    assert frame_count_groups([4, 8], frames_per_pass=1) == [[4], [8]]


def test_one_decoding_pass_for_several_t_gives_what_one_pass_per_t_gives(tiny_root):
    """Clips are the same whichever T they are decoded beside, shuffled frames included."""
    source = SSv2(tiny_root, "validation")

    class OrderSensitive(torch.nn.Module):  # its answer changes with any pixel and with frame order
        def forward(self, x):  # x (B, C, T, H, W)
            weights = torch.arange(1, x.shape[2] + 1, dtype=x.dtype)[:, None, None]  # (T, 1, 1)
            signature = (x * weights).sum(dim=(1, 2, 3, 4))  # (B,)
            return torch.sin(signature[:, None] * torch.arange(1, source.num_classes + 1))  # (B, classes)

    model = OrderSensitive()
    runs = [evaluate(model, source, [8, 2, 4], shuffle_frames=True, progress=False, frames_per_pass=n, **SIZES)
            for n in (32, 1)]
    pd.testing.assert_frame_equal(runs[0].table, runs[1].table)
    pd.testing.assert_frame_equal(runs[0].per_class, runs[1].per_class)
    assert runs[0].table["eval_frames"].tolist() == [8, 2, 4]  # the caller's order


def test_accuracy_counts_what_the_model_predicts(tiny_root):
    """A model that always answers class 0 is right exactly on the class-0 videos."""
    source = SSv2(tiny_root, "validation")

    class AlwaysZero(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], source.num_classes)
            logits[:, 0] = 1.0
            return logits

    result = evaluate(AlwaysZero(), source, [4], max_videos=10, progress=False, **SIZES)
    labels = [label for _, label in source.samples[:10]]
    assert result.table["n"].item() == 10
    assert result.table["top1"].item() == 100.0 * labels.count(0) / 10
    row = result.per_class.set_index("label").loc[0]
    assert row["top1"] == 100.0 and row["n"] == labels.count(0)


def test_shuffle_time_permutes_frames_of_each_clip():
    clip = torch.arange(2 * 1 * 6).float().reshape(2, 1, 6, 1, 1).expand(2, 3, 6, 2, 2).contiguous()
    out = shuffle_time(clip, torch.Generator().manual_seed(0))
    for b in range(2):
        assert sorted(out[b, 0, :, 0, 0].tolist()) == clip[b, 0, :, 0, 0].tolist()
        assert torch.equal(out[b, :, :, :, :], out[b, :1, :, :1, :1].expand(3, 6, 2, 2))  # whole frames move
    assert not torch.equal(out, clip)


def test_recalibrate_bn_updates_only_the_branch_the_clips_use(tiny_root):
    source = SSv2(tiny_root, "train")
    model = create_model("ffn_small", num_classes=source.num_classes, frame_counts=(4, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_bn(model, source, num_frames=4, num_batches=2, batch_size=4, **SIZES)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("running" in k or "num_batches" in k for k in changed)
    branch_4 = model.frame_counts.index(model.branch_for(4))  # the branch index of 4-frame clips
    assert all(f".{branch_4}.running" in k or f".{branch_4}.num_batches" in k for k in changed), changed
    assert not model.training
