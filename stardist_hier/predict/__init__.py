"""Prediction on images, folders and whole-slide images, and writers for its outputs.

:class:`Nuclei` is the record that flows from prediction to the writers.
"""

from .nuclei import Nuclei

__all__ = ["Nuclei"]
