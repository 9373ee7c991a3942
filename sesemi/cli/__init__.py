"""The command lines: `open_sesemi` (open_sesemi.py, the Hydra app) and `sesemi` (app.py)."""
