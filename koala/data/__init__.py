"""Input pipelines and paired augmentation.

The pipeline (tf.data) is imported when one of its names is first used, so that reading a config
(:class:`Augment`) does not load TensorFlow.
"""
from koala.data.augment import Augment

_PIPELINE = ("SideInput", "augment_geometry", "make_dataset", "rgb_to_pair")


def __getattr__(name: str):
    if name in _PIPELINE:
        from koala.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'koala.data' has no attribute {name!r}")


__all__ = ["Augment", *_PIPELINE]
