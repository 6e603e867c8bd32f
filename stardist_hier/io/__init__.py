"""File input and output shared by the package (no TensorFlow): atomic writes, locks, safe loading."""

from .atomic import atomic_path, atomic_write_bytes, atomic_write_text, atomic_write_files, atomic_dir
from .safe import load_npy, load_yaml

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_files", "atomic_dir", "load_npy",
           "load_yaml"]
