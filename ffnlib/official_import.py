"""python -m ffnlib.official_import FILE RUN_DIR [NAME] --config PROFILE.yaml [--set key=value ...] [--force]

Imports an official TSM or FFN checkpoint (BeSpontaneous/FFN-pytorch, mit-han-lab/temporal-shift-module;
see `ffnlib.models.official`) into a workbook run folder as the model folder RUN_DIR/models/NAME, laid
out as a model trained here, so that notebooks 05 and 08 (`ffnlib.tfd`) evaluate it the same way:

    models/NAME/config.yaml            the TrainConfig describing the model (recipe, arch, frame counts,
                                       model_kwargs the weights imply) and the data of PROFILE
    models/NAME/checkpoints/best.pt    model, config, num_classes, step 0, epoch, best, and
    models/NAME/checkpoints/final.pt   source: {"official": FILE, "sha256": ..., what was detected}

NAME defaults to the name notebooks give such a model: `vanilla_16f` for a TSM trained at 16 frames,
`st_8f` at 8, `ffn` for an FFN. The data settings (data_root, video_dir, frame_size, resize_size...) come
from PROFILE (a profile from configs/ or a config YAML, as `python -m ffnlib.train --config`) and
`--set key=value`; what the weights decide (recipe, arch, FFN's frame_counts, model keywords) is taken
from the file, and a `--set` that contradicts it is an error. The T a TSM was trained at is not in its
weights: `--set num_frames=T` gives it, else the TSM repository's file name (`..._segment16_...`), else
PROFILE's num_frames (logged). A NAME that already holds checkpoints is refused unless `--force`,
which deletes its checkpoints, metrics and evaluation caches first.
Exit codes: 0 imported; 2 refused (the message says why).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from torch import nn

from ffnlib.layouts.ssv2 import LABELS_FILE, read_labels
from ffnlib.models.official import OfficialCheckpoint, OfficialCheckpointError, load_official_checkpoint
from ffnlib.paths import file_digest, project_path, write_text_atomic
from ffnlib.errors import UserError, one_line
from ffnlib.runs import ModelRun, WorkbookRun
from ffnlib.train import TrainConfig, build_model, load_model_state, save_checkpoint
from ffnlib.train.config import parse_overrides

log = logging.getLogger(__name__)

DECIDED_BY_THE_WEIGHTS = ("recipe", "arch", "frame_counts")


def imported_config(spec: OfficialCheckpoint, profile: str | Path, overrides: dict | None = None) -> TrainConfig:
    """The TrainConfig of an imported model: PROFILE and `overrides` for the data and the recipe's
    settings, the weights for what they decide (a contradicting override is a ValueError)."""
    overrides = dict(overrides or {})
    base = TrainConfig.from_yaml(profile, overrides)
    implied_kwargs = {k: v for k, v in spec.model_kwargs.items() if k != "frame_counts"}
    implied = {"recipe": "ffn" if spec.family == "ffn" else "vanilla", "arch": f"resnet{spec.depth}",
               "pretrained": ""}  # the weights come from the file, not from ImageNet
    if spec.family == "ffn":
        implied["frame_counts"] = tuple(spec.frame_counts)
    where = f"{spec.source} imported with {profile}"
    for key in DECIDED_BY_THE_WEIGHTS:
        if key in overrides and key in implied and _as_tuple(overrides[key]) != _as_tuple(implied[key]):
            raise ValueError(f"{where}: --set {key}={overrides[key]!r} contradicts the weights ({key}={implied[key]!r})")
    given_kwargs = dict(base.model_kwargs)
    clash = sorted(k for k in implied_kwargs if k in given_kwargs and given_kwargs[k] != implied_kwargs[k])
    if clash:
        raise ValueError(f"{where}: model_kwargs {({k: given_kwargs[k] for k in clash})} contradict the weights "
                         f"({({k: implied_kwargs[k] for k in clash})})")
    implied["model_kwargs"] = {**given_kwargs, **implied_kwargs}
    if spec.family == "tsm":
        if "num_frames" in overrides:
            if spec.num_frames and spec.num_frames != overrides["num_frames"]:
                log.warning("%s: its file name says it was trained at %dF; --set num_frames=%s is used",
                            spec.source, spec.num_frames, overrides["num_frames"])
        elif spec.num_frames:
            implied["num_frames"] = spec.num_frames
        else:
            log.info("%s: the training T is not in the file; num_frames=%d from %s (--set num_frames=T to change)",
                     spec.source, base.num_frames, profile)
    return base.replace(**implied)


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def check_classes(config: TrainConfig, spec: OfficialCheckpoint) -> None:
    """The model's classes against the data's label file, where the data is at hand (else logged)."""
    labels = project_path(config.data_root) / LABELS_FILE if config.data_root else None
    if labels is None or not labels.is_file():
        log.info("%s not found: the %d classes of %s are not checked against the data", labels or "built-in data",
                 spec.num_classes, spec.source)
        return
    count = len(read_labels(labels))
    if count != spec.num_classes:
        raise ValueError(f"{spec.source}: {spec.num_classes} classes, but {labels} lists {count}: "
                         f"the checkpoint was trained on another dataset")


def check_rebuilds(config: TrainConfig, state: dict, model: nn.Module, source: str) -> None:
    """The model folder's config must rebuild the very model: the same keys (strict loading) and the
    same logits at each trained T (a keyword without weights, e.g. fold_div from PROFILE's model_kwargs,
    would otherwise evaluate another network). Raises ValueError naming the file and the config."""
    rebuilt = build_model(config, state["num_classes"])
    load_model_state(rebuilt, state["model"], source)
    rebuilt.eval()
    generator = torch.Generator().manual_seed(0)
    for t in sorted(set(config.train_frame_counts)):
        clip = torch.randn(1, 3, t, 32, 32, generator=generator)  # (B, C, T, H, W), small: a check, not a score
        with torch.no_grad():
            if not torch.allclose(rebuilt(clip), model(clip), rtol=1e-5, atol=1e-5):
                raise ValueError(f"{source}: the config written for it does not rebuild the same network at T={t} "
                                 f"(model {config.model_name}, model_kwargs {config.model_kwargs}); check the profile's "
                                 "model_kwargs")


def write_model_folder(model_dir: str | Path, config: TrainConfig, state: dict, force: bool = False) -> Path:
    """Write a model folder that `ffnlib.train.load_trained` and `ffnlib.tfd.evaluate_model_dir` read:
    config.yaml, checkpoints/best.pt and checkpoints/final.pt (the same `state`). The one place where
    an imported model's folder is written. A folder holding checkpoints is refused (FileExistsError)
    unless `force`, which clears it first (`ModelRun.clear`: checkpoints, metrics.jsonl, evaluation
    caches, config), so that nothing of the old model is resumed or read back."""
    run = ModelRun(model_dir)
    with run.lock("import"):
        old = sorted(run.checkpoints.glob("*.pt")) if run.checkpoints.is_dir() else []
        if old and not force:
            raise FileExistsError(f"{run.root} already holds {', '.join(p.name for p in old)}; pass --force to "
                                  "replace that model (its checkpoints, metrics and evaluations are deleted)")
        if force:
            run.clear()
        write_text_atomic(run.config, config.to_yaml())
        save_checkpoint(run.best, state)
        save_checkpoint(run.final, state)
    return run.root


def import_official(path: str | Path, run_dir: str | Path, name: str | None = None, *, profile: str | Path,
                    overrides: dict | None = None, force: bool = False) -> Path:
    """Import the official checkpoint `path` as `<run_dir>/models/<name>` (see the module docstring);
    returns the model folder."""
    path = Path(path)
    model = load_official_checkpoint(path)
    spec: OfficialCheckpoint = model.official
    config = imported_config(spec, profile, overrides)
    check_classes(config, spec)
    name = name or config.model_name
    if name != config.model_name:
        log.warning("model folder %r: notebooks look for this model as %r", name, config.model_name)
    high = max(config.train_frame_counts)
    best = {} if spec.best_prec1 is None else {f"top1_{high}": spec.best_prec1, "epoch": spec.epoch or 0}
    state = {"model": model.state_dict(), "config": config.to_dict(), "num_classes": spec.num_classes, "step": 0,
             "epoch": spec.epoch or 0, "best": best,
             "source": {"official": str(path.resolve()), "sha256": file_digest(path, "sha256"), **spec.to_dict()}}
    check_rebuilds(config, state, model, str(path))
    folder = write_model_folder(WorkbookRun(run_dir).model(name), config, state, force)
    log.info("imported %s (%s) as %s", path, spec, folder)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.official_import", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the official checkpoint (.pth / .pth.tar)")
    parser.add_argument("run_dir", type=Path, help="workbook run folder (the model goes to RUN_DIR/models/NAME)")
    parser.add_argument("name", nargs="?", help="model folder name (default: vanilla_16f, st_<T>f or ffn)")
    parser.add_argument("--config", required=True, type=Path, help="profile or config YAML for the data settings")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace a model folder that holds checkpoints")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        folder = import_official(args.file, args.run_dir, args.name, profile=args.config,
                                 overrides=parse_overrides(args.overrides), force=args.force)
    except (UserError, OfficialCheckpointError, ValueError, FileExistsError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"imported: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
