"""Whole-slide and plain image readers, a lazy resampled view, and tissue masks (no TensorFlow).

OpenSlide (``pip install 'stardist-hier[slides]'``) reads every slide format it
knows; tiffslide is the fallback for TIFF and SVS; plain images are held in memory.
"""

from .array import SlideArray, choose_level
from .reader import (IMAGE_SUFFIXES, SLIDE_SUFFIXES, SLIDES_EXTRA, ArrayReader, OpenSlideReader, SlideReader,
                     TiffSlideReader, is_slide_path, open_image, open_input, open_slide)
from .synthetic import SyntheticSlide, write_pyramid_tiff
from .tissue import TissueMask, thumbnail, tissue_mask

__all__ = ["SlideReader", "OpenSlideReader", "TiffSlideReader", "ArrayReader", "open_slide", "open_image",
           "open_input", "is_slide_path", "IMAGE_SUFFIXES", "SLIDE_SUFFIXES", "SLIDES_EXTRA", "SlideArray",
           "choose_level", "TissueMask", "tissue_mask", "thumbnail", "SyntheticSlide", "write_pyramid_tiff"]
