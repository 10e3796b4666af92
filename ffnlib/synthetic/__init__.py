"""The built-in dataset: small synthetic videos of moving dots, written in the Something-Something V2 layout.

Every class is a *motion* of a cloud of dots (moving left, moving up and to the right, ...): no
single frame tells the class, because start positions are random and positions wrap around the frame
edges; only the displacement between frames does. With the demo's knobs 5-8 dots (Gaussian, radius
1.4-1.8 px, one random bright colour per video) travel 14-18 px over the whole video, so about 1 px
between the frames of a 16-frame sample and about 4 px between those of a 4-frame sample, while 0-2
distractor dots each drift their own way: motion features learnt at 16 frames do not fit 4-frame
clips, which is what makes a model trained at 16 frames fail at 4 (Temporal Frequency Deviation).
docs/built-in-study.md has the measurements behind every default.

`prepare()` writes the dataset once and returns its root, laid out exactly as SSv2 is (the layout
`ffnlib.layouts.ssv2` owns), so that the built-in data goes through the same code path as the real
data::

    <root>/something-something-v2-labels.json      {class text: index as a string}
    <root>/something-something-v2-train.json       [{"id", "label", "template", "placeholders"}, ...]
    <root>/something-something-v2-validation.json  same
    <root>/something-something-v2-test.json        [{"id"}, ...]
    <root>/<id>.webm                               VP9, lossless (planar RGB: decodes to the exact pixels)
    <root>/builtin-manifest.json                   written last: the knobs, the seed, the counts

`prepare(layout="ssv1")` writes the same videos in the Something-Something V1 layout instead
(`ffnlib.layouts.ssv1`: CSV annotations, `20bn-something-something-v1/<id>/00001.jpg ...` JPEG frames),
so the frame readers are tested end to end on the same pixels (JPEG is lossy: compare with a decode of
the written files, not with the renderer). Two processes preparing the same folder at once take turns
(a lock beside the folder): the second waits, then finds the dataset complete.

Rendering is separate from writing: `render_clip(label, rng, design)` returns one clip as a
(T, H, W, 3) uint8 RGB array, and `make_clip(split, index, seed, design)` the very clip (and label)
that `prepare` writes for that split and index, so experiments can run from memory.

Content is clean on purpose (flat background, smooth dots, no pixel noise): lossless VP9 of noisy
frames decodes about 30 times slower and makes large files.
"""
from .folder import IN_PROGRESS, LAYOUTS, MANIFEST, dataset_name, is_complete, prepare, video_id
from .render import (
    CATALOGUE, FPS, GENERATOR_VERSION, NEW_KNOBS, PROFILES, SPLITS, Design, MotionClass, iter_clips, make_clip,
    render_clip, split_labels,
)

__all__ = [
    "CATALOGUE", "FPS", "GENERATOR_VERSION", "IN_PROGRESS", "LAYOUTS", "MANIFEST", "NEW_KNOBS", "PROFILES", "SPLITS",
    "Design", "MotionClass", "dataset_name", "is_complete", "iter_clips", "make_clip", "prepare", "render_clip",
    "split_labels", "video_id",
]
