"""Task heads for mmlightning."""

from mmlightning_heads.classification import ClassificationHead

__all__ = ["ClassificationHead"]
