"""Lightning callbacks."""

from sesemi.callbacks.channels_last import ChannelsLast
from sesemi.callbacks.ema import EMA
from sesemi.callbacks.interrupted import InterruptedCheckpoint

__all__ = ["EMA", "ChannelsLast", "InterruptedCheckpoint"]
