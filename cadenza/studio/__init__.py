"""The studio layer: `Studio`, the one facade the Python API, the web app and the CLI all call, and
`ModelInfo`, what it says about an installed model.

``core`` holds `Studio` itself (models found, loaded and cached; generate, compose then perform, transfer,
batches); ``rendering``, ``transcribing`` and ``remaking`` hold the methods it takes from its mixins.
"""

from cadenza.studio.core import Studio
from cadenza.studio.model_info import ModelInfo

__all__ = ["ModelInfo", "Studio"]
