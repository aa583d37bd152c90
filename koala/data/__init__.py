"""Input pipelines and paired augmentation."""
from koala.data.pipeline import Augment, SideInput, augment_geometry, make_dataset, rgb_to_pair

__all__ = ["Augment", "SideInput", "augment_geometry", "make_dataset", "rgb_to_pair"]
