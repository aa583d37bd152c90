"""Dataset preparation tools for koala (pure Python + numpy + Pillow, no TensorFlow)."""
