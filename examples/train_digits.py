"""Train FlexMatch on the built-in digits data set from Python, to a one-minute budget on a CPU.

    python examples/train_digits.py                 # a one-minute budget
    python examples/train_digits.py --steps 800     # the digits config's own length: about
                                                    # 3.5 minutes on an idle CPU, 99% top-1
    python examples/train_digits.py --steps 3       # a smoke run

The data set is built into data/digits on first use; the run lands in
runs/digits/flexmatch/<time>/ (config.yaml, results.json, checkpoints/best.ckpt).
`sesemi.train` is what `sesemi train digits ...` runs.
"""

import argparse

import sesemi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="1m", help="wall-clock budget, e.g. 1m, 5m")
    parser.add_argument("--steps", type=int, help="train this many steps instead of a budget")
    parser.add_argument("--method", default="flexmatch", help="any of `sesemi list method`")
    args = parser.parse_args()

    length = f"run.num_iterations={args.steps}" if args.steps else f"run.time_budget={args.budget}"
    result = sesemi.train("digits", [f"method={args.method}", length, "run.gpus=0"])

    print(f"run folder: {result.run_dir}")
    print(f"validation top-1: {result.metrics['val/top1']:.3f} after {result.global_step} steps")
    print(f"best checkpoint: {result.best_checkpoint}")
    print(f"next: python examples/predict.py {result.run_dir}")


if __name__ == "__main__":
    main()
