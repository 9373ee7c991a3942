"""Train a method of your own (src/heads.py, configs/method/confident_entropy.yaml) on a
built-in data config, without changing sesemi.

    python examples/custom_method/train.py              # digits, a one-minute budget
    python examples/custom_method/train.py --steps 3    # a smoke run

The same from the shell, in this folder: `sesemi train -cd configs digits method=confident_entropy`.
Python puts this script's folder on the path, so `src.heads` (the config's `_target_`) imports.
"""

import argparse
from pathlib import Path

import sesemi

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="digits", help="a data config: digits, spoken_digits, image, ..."
    )
    parser.add_argument("--budget", default="1m", help="wall-clock budget, e.g. 1m, 5m")
    parser.add_argument("--steps", type=int, help="train this many steps instead of a budget")
    args = parser.parse_args()

    length = f"run.num_iterations={args.steps}" if args.steps else f"run.time_budget={args.budget}"
    overrides = ["method=confident_entropy", length, "run.gpus=0"]
    result = sesemi.train(args.data, overrides, config_dir=HERE / "configs")  # as -cd configs

    print(f"run folder: {result.run_dir}")
    print(f"validation top-1: {result.metrics['val/top1']:.3f} after {result.global_step} steps")
    print(f"the method's loss is logged as train/entropy_loss in {result.run_dir / 'metrics.csv'}")


if __name__ == "__main__":
    main()
