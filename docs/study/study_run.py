"""The built-in study's experiment harness, as it ran (docs/built-in-study.md); results in results.jsonl.

    .venv/bin/python docs/study/study_run.py --tag NAME [--design '{...}'] [--model '{...}'] [--cfg '{...}']
        [--recipes vanilla16,st4,ffn,prop,mixed] [--steps 500] [--seed 0] [--threads 1]

`--design` takes ffnlib.synthetic.Design knobs; knobs left out take Design's defaults *of the day*, so
each line of results.jsonl records the full design it ran. A line is appended to `--out`
(default scratch/study_results.jsonl, git-ignored); the trained weights go to scratch/study_ckpt/.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_lib as L  # noqa: E402
from ffnlib import synthetic  # noqa: E402
from ffnlib.models import create_model  # noqa: E402
from ffnlib.train.config import TrainConfig  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--tag", required=True)
p.add_argument("--design", default="{}")
p.add_argument("--model", default="{}")
p.add_argument("--cfg", default="{}")
p.add_argument("--recipes", default="vanilla16,st4,ffn")
p.add_argument("--steps", type=int, default=500)
p.add_argument("--steps4", type=int, default=0, help="steps for st4 (default: --steps)")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--data_seed", type=int, default=0)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--out", default="scratch/study_results.jsonl")
p.add_argument("--per_class", action="store_true")
p.add_argument("--scales", default="")
a = p.parse_args()
torch.set_num_threads(a.threads)
if a.scales:
    L.SCALES = [float(x) for x in a.scales.split(",")]

design = synthetic.Design.from_knobs(**json.loads(a.design))
t = time.time()
train_src = L.mem_split(design, "train", a.data_seed)
val_src = L.mem_split(design, "validation", a.data_seed)
print(f"rendered {len(train_src.samples)}+{len(val_src.samples)} clips in {time.time() - t:.1f}s", flush=True)

base_cfg = dict(frame_size=32, resize_size=36, batch_size=32, lr=0.1, weight_decay=1e-4, lr_schedule="cosine",
                warmup_steps=50, dropout=0.0, fc_lr_mult=1.0, fc_bias_lr_mult=1.0, clip_grad_norm=20.0)
base_cfg.update(json.loads(a.cfg))
cfg = TrainConfig.from_dict(base_cfg)
model_kw = dict(layers=(1, 1, 1, 1), width=8, stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False,
                zero_init_residual=True)
model_kw.update(json.loads(a.model))
ffn_kw = {k: model_kw.pop(k) for k in ("private_bn", "adaconv", "adaconv_init") if k in model_kw}

for r in a.recipes.split(","):
    torch.manual_seed(a.seed)
    steps = a.steps
    if r == "vanilla16":
        m = create_model("tsm_resnet", design.num_classes, dropout=cfg.dropout, **model_kw)
        info = L.train(m, train_src, cfg, "vanilla", steps, num_frames=16, seed=a.seed)
    elif r.startswith("st"):
        T = int(r[2:])
        steps = a.steps4 or a.steps
        m = create_model("tsm_resnet", design.num_classes, dropout=cfg.dropout, **model_kw)
        info = L.train(m, train_src, cfg, "vanilla", steps, num_frames=T, seed=a.seed)
    elif r.startswith("ffn"):
        kw = dict(ffn_kw)
        if r == "ffn_nobn":
            kw["private_bn"] = False
        if r == "ffn_noada":
            kw["adaconv"] = False
        if r == "ffn_shared":
            kw.update(private_bn=False, adaconv=False)
        m = create_model("ffn_resnet", design.num_classes, dropout=cfg.dropout, **model_kw, **kw)
        lam = 0.0 if r == "ffn_nokl" else 1.0
        info = L.train(m, train_src, cfg, "ffn", steps, seed=a.seed, lam=lam)
    elif r == "prop":
        m = create_model("tsm_resnet", design.num_classes, dropout=cfg.dropout, **model_kw)
        info = L.train(m, train_src, cfg, "proportional", steps, seed=a.seed)
    elif r == "mixed":
        m = create_model("tsm_resnet", design.num_classes, dropout=cfg.dropout, **model_kw)
        info = L.train(m, train_src, cfg, "mixed", steps, seed=a.seed)
    else:
        raise SystemExit(f"unknown recipe {r}")
    res = L.eval_suite(m, val_src, cfg, train_source=train_src, bn_T=4 if r in ("vanilla16",) else None,
                       shuffle_T=16)
    res["trainacc16"] = round(L.acc(m, train_src, 16, cfg, max_n=500), 1)
    os.makedirs("scratch/study_ckpt", exist_ok=True)
    torch.save(m.state_dict(), f"scratch/study_ckpt/{a.tag}_{r}_s{a.seed}.pt")
    if a.per_class:
        res["pc4"] = L.per_class(m, val_src, 4, cfg)
        res["pc16"] = L.per_class(m, val_src, 16, cfg)
    rec = dict(tag=a.tag, scales=a.scales, recipe=r, seed=a.seed, steps=steps, threads=a.threads, design=design.knobs(),
               model=model_kw, cfg={k: base_cfg[k] for k in base_cfg}, params=sum(p.numel() for p in m.parameters()),
               **{k: round(v, 1) for k, v in info.items()}, **res)
    L.log_result(a.out, rec)
