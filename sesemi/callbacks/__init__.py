"""Lightning callbacks."""

from sesemi.callbacks.channels_last import ChannelsLast
from sesemi.callbacks.ema import EMA

__all__ = ["EMA", "ChannelsLast"]
