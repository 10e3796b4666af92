"""ffnlib: the library behind the ffn-workbook notebooks (Frame Flexible Network on TSM-ResNet).

Modules (each imports without torchvision):
    video       decode / write video files with PyAV
    sampling    TSN segment sampling for one or several frame counts
    transforms  the shared spatial augmentation and normalisation
    frames      videos stored as folders of JPEG frames (SSv1, TSM frame dumps)
    layouts     one module per dataset layout on disk (ssv2, ssv1, frames, kinetics, hmdb51, video_list)
    datasets    open_dataset (any layout, or the built-in data) and the clip views
    synthetic   the built-in synthetic dataset, generated on first use and cached
    models      TSM-ResNet, FFN-ResNet, create_model, FLOPs
    losses      temporal distillation
    train       config, fit loop, checkpoints, evaluation, command line
    workbook    headless notebook runs with papermill
"""
__version__ = "0.1.0"
