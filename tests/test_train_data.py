"""Feeding the loop (ffnlib.train.data): each epoch's sample keys, the loader whose workers outlive an
epoch, and the step from a loader's uint8 clip to the model's normalised input."""
import torch

from ffnlib.datasets import SSv2, SampleKey
from ffnlib.train import TrainConfig, epoch_batches, train_view
from ffnlib.train.data import TrainingLoader, model_input
from ffnlib.train.distributed import World
from ffnlib.transforms import normalize


def tiny_config(root, **changes) -> TrainConfig:
    values = dict(data_root=str(root), arch="small", frame_size=16, resize_size=20, batch_size=4, recipe="ffn",
                  frame_counts=[2, 4], seed=3)
    return TrainConfig.from_dict({**values, **changes})


def test_epoch_batches_name_their_epoch_and_the_proportional_t():
    config = TrainConfig(batch_size=4, seed=1)
    batches = epoch_batches(config, 10, epoch=2, steps=3, world=World())
    assert all(isinstance(k, SampleKey) and k.epoch == 2 and k.num_frames is None for b in batches for k in b)
    assert [len(b) for b in batches] == [4, 4, 4]
    proportional = epoch_batches(config.replace(recipe="proportional", frame_counts=[4, 16]), 10, 2, 3, World())
    assert [[k.index for k in b] for b in proportional] == [[k.index for k in b] for b in batches]
    for batch in proportional:  # one T per global batch
        assert len({k.num_frames for k in batch}) == 1 and batch[0].num_frames in (4, 16)


def test_model_input_normalises_uint8_on_the_device_and_passes_float_through():
    clip = torch.randint(0, 256, (2, 3, 4, 5, 5), dtype=torch.uint8)  # (B, C, T, S, S) as collated
    out = model_input(clip, torch.device("cpu"))
    assert out.dtype == torch.float32 and torch.equal(out, normalize(clip))
    ready = torch.randn(2, 3, 4, 5, 5)  # a synthetic batch, already the model's input
    assert model_input(ready, torch.device("cpu")) is ready


def expected_batches(view, batches, epoch):
    """The batches as the view gives them when told the epoch (`set_epoch`) and asked by index."""
    view.set_epoch(epoch)
    try:
        return [torch.utils.data.default_collate([view[k.index] for k in batch]) for batch in batches]
    finally:
        view.set_epoch(0)


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_persistent_workers_draw_each_epoch_afresh(tiny_root):
    """The keys carry the epoch: workers started in epoch 0 (holding a copy of the view at epoch 0)
    give epoch 1's and epoch 2's samples, as the view told each epoch does."""
    config = tiny_config(tiny_root)
    view = train_view(config, SSv2(tiny_root, "train"))
    for workers in (0, 2):
        loader = TrainingLoader(view, num_workers=workers)
        try:
            for epoch in (0, 1, 2):
                batches = epoch_batches(config, len(view), epoch, 2, World())
                got = list(loader.epoch(batches))
                assert_same_batches(got, expected_batches(view, batches, epoch))
                if workers and epoch == 0:
                    first = loader.loader._iterator._workers
            if workers:  # the same worker processes served every epoch
                assert loader.loader._iterator._workers is first and all(w.is_alive() for w in first)
        finally:
            loader.close()
        if workers:
            assert all(not w.is_alive() for w in first)  # close() ended them
    assert got[0][0].dtype == torch.uint8 and got[0][0].shape == (4, 3, 2, 16, 16)  # (B, C, T, S, S)
    index = batches[0][0].index
    assert not torch.equal(expected_batches(view, [[SampleKey(index, 0)]], 0)[0][1],
                           expected_batches(view, [[SampleKey(index, 1)]], 1)[0][1])  # epochs differ


def test_a_loader_stopped_mid_epoch_serves_the_next_epoch_whole(tiny_root):
    """A stop request breaks out of an epoch with batches still prefetched: the next epoch's iteration
    starts clean, as the resumption after a stop during validation needs."""
    config = tiny_config(tiny_root)
    view = train_view(config, SSv2(tiny_root, "train"))
    loader = TrainingLoader(view, num_workers=2)
    try:
        iterator = loader.epoch(epoch_batches(config, len(view), 0, 6, World()))
        next(iterator)  # the others are in flight
        batches = epoch_batches(config, len(view), 1, 3, World())
        got = list(loader.epoch(batches))
    finally:
        loader.close()
    assert_same_batches(got, expected_batches(view, batches, 1))
