"""Deprecated location of the option and result types: see engine/types/ (one module per domain).
Kept only while the code base moves; import from engine.types.vision / engine.types.audio."""
from .types import Timings  # noqa: F401
from .types.audio import *  # noqa: F401,F403
from .types.vision import *  # noqa: F401,F403
