"""The command lines: `open_sesemi` (open_sesemi.py, the Hydra app) and `sesemi` (app.py).

Both only parse arguments and call library functions; each command's help names its Python
twin (e.g. `sesemi train` is `sesemi.train`, `sesemi fetch` is `sesemi.datasets.builtin.fetch`).
"""
