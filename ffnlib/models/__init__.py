"""Temporal shift, TSM-ResNet, FFN-ResNet, `create_model`, ImageNet weights, FLOPs, official checkpoints.

Models take clips (B, C, T, H, W) float and return logits (B, num_classes); see `resnet` and `ffn`.
Nothing here imports torchvision (only `pretrained="imagenet"` tries it, inside a function).
"""
from .ffn import FFNResNet, nearest_count
from .flops import flops
from .official import OfficialCheckpoint, OfficialCheckpointError, load_official_checkpoint
from .registry import ARCHITECTURES, create_model, list_models, register_model
from .resnet import AdaConv, Bottleneck, BranchNorm, ResNetTSMBase, TSMResNet
from .shift import TemporalShift, temporal_shift
from .summary import num_parameters, parameter_table, stage_shapes
from .weights import LoadReport, imagenet_state_dict, load_imagenet

__all__ = [
    "ARCHITECTURES", "AdaConv", "Bottleneck", "BranchNorm", "FFNResNet", "LoadReport", "TSMResNet", "TemporalShift",
    "create_model", "flops", "imagenet_state_dict", "list_models", "load_imagenet", "nearest_count",
    "num_parameters", "OfficialCheckpoint", "OfficialCheckpointError", "load_official_checkpoint",
    "parameter_table", "register_model", "ResNetTSMBase", "stage_shapes", "temporal_shift",
]
