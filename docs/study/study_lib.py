"""The built-in study's harness (not library code; kept as it ran, for docs/built-in-study.md).

Data: clips rendered in memory by ffnlib.synthetic (the exact pixels prepare() writes; lossless VP9
decodes to them), then the real ffnlib.sampling + ffnlib.transforms (through ffnlib.datasets' own
load(), with decode_sample patched to read from memory), real ffnlib.models, the real optimiser
param groups / lr schedule of ffnlib.train.optim. Only the loop and the loss are scratch code.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ffnlib import datasets, synthetic
from ffnlib.models import create_model
from ffnlib.train.config import TrainConfig
from ffnlib.train.optim import lr_at, make_optimizer, set_lr


class MemVideo:
    def __init__(self, frames):
        self.frames = frames  # (T, H, W, 3) uint8

    @property
    def num_frames(self):
        return len(self.frames)

    @property
    def height(self):
        return self.frames.shape[1]

    @property
    def width(self):
        return self.frames.shape[2]

    def rgb(self, frame_idx):
        return self.frames[np.asarray(frame_idx, dtype=np.int64)]


class MemSource:
    """Looks like datasets.SSv2 to the views: classes, samples, and clips in memory."""

    def __init__(self, clips, labels, classes):
        self.clips = clips
        self.samples = [(str(i), int(l)) for i, l in enumerate(labels)]
        self.classes = classes


_orig_decode_sample = datasets.decode_sample


def _decode_sample(source, index):
    if isinstance(source, MemSource):
        return MemVideo(source.clips[index])
    return _orig_decode_sample(source, index)


datasets.decode_sample = _decode_sample

_CACHE = {}
SCALES = None  # override the train crop scales


def mem_split(design: synthetic.Design, split: str, seed: int = 0) -> MemSource:
    key = (design, split, seed)
    if key not in _CACHE:
        clips, labels = [], []
        for c, l in synthetic.iter_clips(split, seed, design):
            clips.append(c)
            labels.append(l)
        _CACHE[key] = MemSource(clips, labels, [c.text for c in design.classes])
    return _CACHE[key]


def kl(student, teacher):
    return F.kl_div(F.log_softmax(student, 1), F.softmax(teacher.detach(), 1), reduction="batchmean")


def collate(batch):
    *clips, labels = zip(*batch)
    return [torch.stack(c) for c in clips], torch.tensor(labels)


class Separate(torch.nn.Module):
    """FFN without weight sharing (the paper's Table 4): one TSM per trained frame count.

    `model([x4, x8, x16])` runs each clip through the TSM of its T (a list of logits, as FFN's
    multi-clip forward); `model(x)` uses the TSM of the nearest count, ties to the larger, as FFN.
    """

    def __init__(self, make, frame_counts=(4, 8, 16)):
        super().__init__()
        self.frame_counts = tuple(frame_counts)
        self.nets = torch.nn.ModuleList(make() for _ in self.frame_counts)

    def _net(self, t):
        best = min(self.frame_counts, key=lambda c: (abs(c - t), -c))
        return self.nets[self.frame_counts.index(best)]

    def forward(self, x):
        if isinstance(x, (list, tuple)):
            return [self._net(c.shape[2])(c) for c in x]
        return self._net(x.shape[2])(x)


class Ensemble(torch.nn.Module):
    """The paper's Ensemble baseline: the ST models' class probabilities averaged, each model fed the
    same clip; returns log-probabilities (B, classes), so argmax and accuracy work as for logits."""

    def __init__(self, models):
        super().__init__()
        self.models = torch.nn.ModuleList(models)

    def forward(self, x):
        return torch.stack([F.softmax(m(x), 1) for m in self.models]).mean(0).log()


def mix_sampling(x4, x16, rng):
    """The paper's Mixed Sampling on one batch: for every sample, 4 consecutive frames of its 16F clip
    (start uniform in 0..12) become lam * (its 4F clip) + (1 - lam) * those frames, lam ~ Beta(1, 1).
    x4 (B, C, 4, H, W), x16 (B, C, 16, H, W); returns a new (B, C, 16, H, W)."""
    out = x16.clone()
    k = x4.shape[2]
    for b in range(x16.shape[0]):
        s = int(rng.integers(0, x16.shape[2] - k + 1))
        lam = float(rng.beta(1.0, 1.0))
        out[b, :, s:s + k] = lam * x4[b] + (1 - lam) * x16[b, :, s:s + k]
    return out


def train(model, source, cfg: TrainConfig, recipe: str, steps: int, frame_counts=(4, 8, 16), num_frames=16,
          log_every=50, seed=0, prop_counts=(4, 16), prop_probs=None, mixed_counts=(4, 16), lam=1.0,
          rho=0.5, lr=None):
    """recipe: vanilla (num_frames) | ffn (frame_counts, CE16 + lam * KL; also FFN without weight sharing
    given a `Separate` model) | ffn_notd (frame_counts, CE on every branch, no KL) | proportional (one T of
    prop_counts per step, drawn with prop_probs) | mixed (the workbook's: CE on every T of mixed_counts
    each step) | mixsamp (the paper's Mixed Sampling on 4/16F with probability rho; the network sees 16F).
    `lr` overrides cfg.lr (fine-tuning)."""
    torch.manual_seed(seed)
    if lr is not None:
        cfg = cfg.replace(lr=lr)
    if recipe == "vanilla":
        counts = (num_frames,)
    elif recipe in ("ffn", "ffn_notd"):
        counts = tuple(frame_counts)
    elif recipe == "proportional":
        counts = tuple(prop_counts)
    elif recipe == "mixed":
        counts = tuple(mixed_counts)
    elif recipe == "mixsamp":
        counts = (4, 16)
    view = datasets.MultiFrameClips(source, counts, train=True, frame_size=cfg.frame_size,
                                    resize_size=cfg.resize_size, seed=seed)
    if SCALES is not None:
        from ffnlib.transforms import ClipTransform
        view.transform = ClipTransform(train=True, frame_size=cfg.frame_size, resize_size=cfg.resize_size,
                                       scales=tuple(SCALES))
    n = len(view)
    bs = cfg.batch_size
    steps_per_epoch = n // bs
    opt = make_optimizer(model, cfg)
    sched_cfg = cfg.replace(epochs=1)  # lr_at's total = epochs * steps_per_epoch: make it `steps`
    model.train()
    rng = np.random.default_rng([seed, 99])
    t0 = time.time()
    step = 0
    epoch = 0
    hist = []
    ce_hist = []
    tdata = 0.0
    while step < steps:
        view.set_epoch(epoch)
        perm = rng.permutation(n)
        for b in range(steps_per_epoch):
            if step >= steps:
                break
            td = time.time()
            if recipe == "proportional":
                t_pick = int(rng.choice(np.asarray(counts), p=prop_probs))
                items = [view.load(int(i), (t_pick,)) for i in perm[b * bs:(b + 1) * bs]]
                clips = [torch.stack([c[0][0] for c in items])]
                y = torch.tensor([c[1] for c in items])
            else:
                clips, y = collate([view[int(i)] for i in perm[b * bs:(b + 1) * bs]])
            tdata += time.time() - td
            set_lr(opt, lr_at(step, steps, sched_cfg))
            if recipe == "ffn":
                outs = model(clips)
                ce16 = F.cross_entropy(outs[-1], y)
                loss = ce16 + lam * sum(kl(o, outs[-1]) for o in outs[:-1])
                ce_hist.append([float(ce16.detach())] + [float(F.cross_entropy(o.detach(), y)) for o in outs[:-1]])
            elif recipe == "ffn_notd":
                outs = model(clips)
                loss = sum(F.cross_entropy(o, y) for o in outs)
            elif recipe == "mixsamp":
                x = mix_sampling(clips[0], clips[1], rng) if rng.uniform() < rho else clips[1]
                loss = F.cross_entropy(model(x), y)
            elif recipe == "mixed":
                loss = sum(F.cross_entropy(model(c), y) for c in clips)
            else:
                loss = F.cross_entropy(model(clips[0]), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
            opt.step()
            hist.append(float(loss.detach()))
            step += 1
            if log_every and step % log_every == 0:
                extra = f" ce16/4/8 {np.round(np.mean(ce_hist[-log_every:], 0), 3).tolist()}" if ce_hist else ""
                print(f"  step {step} loss {np.mean(hist[-log_every:]):.3f}{extra} {time.time() - t0:.0f}s", flush=True)
        epoch += 1
    return dict(train_s=time.time() - t0, data_s=tdata, final_loss=float(np.mean(hist[-50:])))


@torch.no_grad()
def predict(model, source, T, cfg, shuffle=False, bs=100, max_n=None):
    view = datasets.VideoClips(source, T, train=False, frame_size=cfg.frame_size, resize_size=cfg.resize_size)
    model.eval()
    g = torch.Generator().manual_seed(123)
    preds, ys = [], []
    n = len(view) if max_n is None else min(max_n, len(view))
    for b in range(0, n, bs):
        items = [view[i] for i in range(b, min(n, b + bs))]
        x = torch.stack([c for c, _ in items])
        if shuffle:
            order = torch.stack([torch.randperm(T, generator=g) for _ in range(len(x))])
            x = torch.gather(x, 2, order[:, None, :, None, None].expand_as(x))
        preds.append(model(x).argmax(1))
        ys.append(torch.tensor([l for _, l in items]))
    return torch.cat(preds).numpy(), torch.cat(ys).numpy()


def acc(model, source, T, cfg, **kw):
    p, y = predict(model, source, T, cfg, **kw)
    return 100.0 * float((p == y).mean())


def per_class(model, source, T, cfg):
    p, y = predict(model, source, T, cfg)
    return [round(100.0 * float((p[y == c] == c).mean()), 1) for c in range(int(y.max()) + 1)]


@torch.no_grad()
def recalibrate_bn(model, source, T, cfg, batches=30, bs=32, seed=5):
    """Re-estimate every BN's running stats (cumulative average) on T-frame training clips."""
    import copy
    m = copy.deepcopy(model)
    bns = [x for x in m.modules() if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    m.train()
    view = datasets.VideoClips(source, T, train=True, frame_size=cfg.frame_size, resize_size=cfg.resize_size,
                               seed=seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(view))
    for b in range(batches):
        idx = perm[(b * bs) % len(view):][:bs]
        x = torch.stack([view[int(i)][0] for i in idx])
        m(x)
    m.eval()
    return m


def eval_suite(model, val, cfg, Ts=(2, 4, 6, 8, 12, 16), shuffle_T=16, train_source=None, bn_T=None):
    out = {f"acc{T}": round(acc(model, val, T, cfg), 1) for T in Ts}
    if shuffle_T:
        out[f"shuf{shuffle_T}"] = round(acc(model, val, shuffle_T, cfg, shuffle=True), 1)
    if bn_T and train_source is not None:
        m = recalibrate_bn(model, train_source, bn_T, cfg)
        out[f"bnre{bn_T}"] = round(acc(m, val, bn_T, cfg), 1)
    return out


def log_result(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    print("RESULT", json.dumps(record), flush=True)
