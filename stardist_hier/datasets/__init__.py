"""Dataset readers (no TensorFlow)."""
