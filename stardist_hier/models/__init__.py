"""StarDist models with hierarchy-aware class heads (TensorFlow)."""
