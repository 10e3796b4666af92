"""Temporal shift, TSM-ResNet, FFN-ResNet (with or without weight sharing), the probability-averaging
`Ensemble`, `create_model`, ImageNet weights, FLOPs, the official released checkpoints.

Models take clips (B, C, T, H, W) float and return logits (B, num_classes) (an `Ensemble`: the log of
its members' mean probability); see `resnet`, `ffn` and `ensemble`. ResNet-18 (basic blocks), -50 and
-101 (bottlenecks) and two CPU networks are named in `ARCHITECTURES`. Nothing here imports
torchvision (only `pretrained="imagenet"` tries it, inside a function).
"""
from .ensemble import Ensemble
from .ffn import FFNResNet, UnsharedFFN, ffn_resnet, nearest_count
from .flops import flops
from .official import OfficialCheckpoint, OfficialCheckpointError, load_official_checkpoint
from .registry import ARCHITECTURES, create_model, list_models, register_model
from .resnet import AdaConv, BasicBlock, Bottleneck, BranchNorm, ResNetTSMBase, TSMBlock, TSMResNet
from .shift import TemporalShift, temporal_shift
from .summary import num_parameters, parameter_table, stage_shapes
from .weights import IMAGENET_FILES, LoadReport, imagenet_state_dict, imagenet_url, load_imagenet

__all__ = [
    "ARCHITECTURES", "AdaConv", "BasicBlock", "Bottleneck", "BranchNorm", "Ensemble", "FFNResNet", "IMAGENET_FILES",
    "LoadReport", "OfficialCheckpoint", "OfficialCheckpointError", "ResNetTSMBase", "TSMBlock", "TSMResNet",
    "TemporalShift", "UnsharedFFN", "create_model", "ffn_resnet", "flops", "imagenet_state_dict", "imagenet_url",
    "list_models", "load_imagenet", "load_official_checkpoint", "nearest_count", "num_parameters",
    "parameter_table", "register_model", "stage_shapes", "temporal_shift",
]
