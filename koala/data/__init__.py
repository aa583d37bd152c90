"""Input pipelines and paired augmentation."""
from koala.data.pipeline import Augment, SideInput, build_augmenter, make_dataset, rgb_to_pair

__all__ = ["Augment", "SideInput", "build_augmenter", "make_dataset", "rgb_to_pair"]
