"""Command-line entry points: `open_sesemi` (the Hydra training app)."""
