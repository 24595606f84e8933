"""Image encoders for mmlightning."""

from mmlightning_vision.encoder import TimmEncoder
from mmlightning_vision.processor import ImageProcessor

__all__ = ["ImageProcessor", "TimmEncoder"]
