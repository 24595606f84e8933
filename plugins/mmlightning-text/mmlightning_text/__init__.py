"""Text encoders for mmlightning."""

from mmlightning_text.encoder import TextEncoder
from mmlightning_text.processor import TextProcessor

__all__ = ["TextEncoder", "TextProcessor"]
