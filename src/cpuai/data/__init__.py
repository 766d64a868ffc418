"""Data sets: image folders (label = directory name), digits, tabular CSV, text corpora."""

from cpuai.data.imagefolder import ImageFolder

__all__ = ["ImageFolder"]
