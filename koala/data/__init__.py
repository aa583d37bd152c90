"""Input pipelines and paired augmentation."""
from koala.data.pipeline import Augment, build_augmenter, make_dataset, rgb_to_pair

__all__ = ["Augment", "build_augmenter", "make_dataset", "rgb_to_pair"]
