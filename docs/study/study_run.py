"""The built-in study's experiment harness, as it ran (docs/built-in-study.md); results in results.jsonl.

    .venv/bin/python docs/study/study_run.py --tag NAME [--design '{...}'] [--model '{...}'] [--cfg '{...}']
        [--recipes vanilla16,st4,ffn,...] [--steps 500] [--seed 0] [--threads 1] [--eval_T 2,4,...]

`--design` takes ffnlib.synthetic.Design knobs; knobs left out take Design's defaults *of the day*, so
each line of results.jsonl records the full design it ran. A line is appended to `--out`
(default scratch/study_results.jsonl, git-ignored); the trained weights go to scratch/study_ckpt/.

Recipes (one model each, trained in the order given):
  vanilla16, stT (T any count: st4, st8...)   TSM at one T (vanilla16 = ST at 16F)
  ffn                                         FFN on 4/8/16, CE(16F) + lam * KL
  ffn_nobn / ffn_noada / ffn_shared           FFN without private BN / without adaconv / without both
  ffn_notd                                    FFN with CE on every branch and no KL (w/o temporal distillation)
  ffn_nokl                                    FFN with lam = 0 (CE on 16F only: the 4F/8F branches learn nothing of their own)
  ffn_nows                                    three separate TSMs on 4/8/16 trained together with CE(16F) + KL
  prop                                        Proportional Sampling: each step 4F or 16F, P(16F) = --varrho
  mixsamp                                     the paper's Mixed Sampling on 4/16F, probability --rho (network sees 16F)
  mixed                                       the workbook's mixed: CE on 4F and 16F every step, one TSM
  finetune                                    vanilla16 (of this run, or its checkpoint) fine-tuned at 4F
                                              for --ft_steps steps at lr * --ft_lr_mult
  ensemble                                    st4, st8, vanilla16 (of this run, or their checkpoints): mean of
                                              their probabilities (no training)
"""
import argparse
import copy
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
p.add_argument("--eval_T", default="2,4,6,8,12,16", help="frame counts to evaluate at")
p.add_argument("--bn_T", type=int, default=4, help="vanilla16: BN re-estimated at this T (0: skip)")
p.add_argument("--lam", type=float, default=1.0)
p.add_argument("--rho", type=float, default=0.5, help="mixsamp: probability of mixing a step")
p.add_argument("--varrho", type=float, default=0.5, help="prop: probability of 16F")
p.add_argument("--ft_steps", type=int, default=0, help="finetune: steps at 4F (default: --steps // 4)")
p.add_argument("--ft_lr_mult", type=float, default=0.1, help="finetune: lr = cfg lr * this")
p.add_argument("--note", default="")
a = p.parse_args()
torch.set_num_threads(a.threads)
if a.scales:
    L.SCALES = [float(x) for x in a.scales.split(",")]
eval_T = tuple(int(t) for t in a.eval_T.split(","))

design = synthetic.Design.from_knobs(**json.loads(a.design))
t = time.time()
train_src = L.mem_split(design, "train", a.data_seed)
val_src = L.mem_split(design, "validation", a.data_seed)
render_s = time.time() - t
print(f"rendered {len(train_src.samples)}+{len(val_src.samples)} clips in {render_s:.1f}s", flush=True)

base_cfg = dict(frame_size=32, resize_size=36, batch_size=32, lr=0.1, weight_decay=1e-4, lr_schedule="cosine",
                warmup_steps=50, dropout=0.0, fc_lr_mult=1.0, fc_bias_lr_mult=1.0, clip_grad_norm=20.0)
base_cfg.update(json.loads(a.cfg))
cfg = TrainConfig.from_dict(base_cfg)
model_kw = dict(layers=(1, 1, 1, 1), width=8, stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False,
                zero_init_residual=True)
model_kw.update(json.loads(a.model))
ffn_kw = {k: model_kw.pop(k) for k in ("private_bn", "adaconv", "adaconv_init") if k in model_kw}
os.makedirs("scratch/study_ckpt", exist_ok=True)


def ckpt(r):
    return f"scratch/study_ckpt/{a.tag}_{r}_s{a.seed}.pt"


def tsm():
    return create_model("tsm_resnet", design.num_classes, dropout=cfg.dropout, **model_kw)


trained = {}


def trained_tsm(r):
    """A TSM recipe's model of this run: trained above, or its checkpoint from an earlier run of this tag/seed."""
    if r not in trained:
        m = tsm()
        m.load_state_dict(torch.load(ckpt(r), weights_only=True))
        trained[r] = m
    return trained[r]


for r in a.recipes.split(","):
    torch.manual_seed(a.seed)
    steps = a.steps
    extra = {}
    if r == "vanilla16":
        m = tsm()
        info = L.train(m, train_src, cfg, "vanilla", steps, num_frames=16, seed=a.seed)
    elif r.startswith("st"):
        T = int(r[2:])
        steps = (a.steps4 or a.steps) if T == 4 else a.steps
        m = tsm()
        info = L.train(m, train_src, cfg, "vanilla", steps, num_frames=T, seed=a.seed)
    elif r == "ffn_nows":
        m = L.Separate(tsm)
        extra["lam"] = a.lam
        info = L.train(m, train_src, cfg, "ffn", steps, seed=a.seed, lam=a.lam)
    elif r.startswith("ffn"):
        kw = dict(ffn_kw)
        if r == "ffn_nobn":
            kw["private_bn"] = False
        if r == "ffn_noada":
            kw["adaconv"] = False
        if r == "ffn_shared":
            kw.update(private_bn=False, adaconv=False)
        m = create_model("ffn_resnet", design.num_classes, dropout=cfg.dropout, **model_kw, **kw)
        if r == "ffn_notd":
            info = L.train(m, train_src, cfg, "ffn_notd", steps, seed=a.seed)
        else:
            lam = 0.0 if r == "ffn_nokl" else a.lam
            extra["lam"] = lam
            info = L.train(m, train_src, cfg, "ffn", steps, seed=a.seed, lam=lam)
    elif r == "prop":
        m = tsm()
        extra["varrho"] = a.varrho
        info = L.train(m, train_src, cfg, "proportional", steps, seed=a.seed, prop_counts=(4, 16),
                       prop_probs=(1 - a.varrho, a.varrho))
    elif r == "mixsamp":
        m = tsm()
        extra["rho"] = a.rho
        info = L.train(m, train_src, cfg, "mixsamp", steps, seed=a.seed, rho=a.rho)
    elif r == "mixed":
        m = tsm()
        info = L.train(m, train_src, cfg, "mixed", steps, seed=a.seed)
    elif r == "finetune":
        m = copy.deepcopy(trained_tsm("vanilla16"))
        steps = a.ft_steps or max(1, a.steps // 4)
        extra.update(ft_lr=round(cfg.lr * a.ft_lr_mult, 6))
        info = L.train(m, train_src, cfg, "vanilla", steps, num_frames=4, seed=a.seed + 1000,
                       lr=cfg.lr * a.ft_lr_mult)
    elif r == "ensemble":
        steps = 0
        m = L.Ensemble([trained_tsm(x) for x in ("st4", "st8", "vanilla16")])
        info = {}
    else:
        raise SystemExit(f"unknown recipe {r}")
    t_eval = time.time()
    res = L.eval_suite(m, val_src, cfg, Ts=eval_T, train_source=train_src,
                       bn_T=a.bn_T if r == "vanilla16" else None, shuffle_T=16 if r == "vanilla16" else 0)
    res["trainacc16"] = round(L.acc(m, train_src, 16, cfg, max_n=500), 1)
    res["eval_s"] = round(time.time() - t_eval, 1)
    if r != "ensemble":
        torch.save(m.state_dict(), ckpt(r))
        trained[r] = m
    if a.per_class:
        res["pc4"] = L.per_class(m, val_src, 4, cfg)
        res["pc16"] = L.per_class(m, val_src, 16, cfg)
    rec = dict(tag=a.tag, harness=2, scales=a.scales, recipe=r, seed=a.seed, data_seed=a.data_seed, steps=steps,
               threads=a.threads, design=dict(vars(design)) | {
                   k: list(v) for k, v in vars(design).items() if isinstance(v, tuple)},
               model=model_kw | ffn_kw, cfg={k: base_cfg[k] for k in base_cfg},
               params=sum(p.numel() for p in m.parameters()), render_s=round(render_s, 1), note=a.note,
               **extra, **{k: round(v, 1) for k, v in info.items()}, **res)
    L.log_result(a.out, rec)
