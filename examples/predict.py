"""Predict images with a trained run: one Prediction per file, and predictions.csv.

    python examples/predict.py runs/digits/flexmatch/<time>             # its validation images
    python examples/predict.py runs/digits/flexmatch/<time> my_images/  # a folder, a file, a .txt list

`sesemi.predictor.load` takes a run folder, a checkpoint in one, or a published model
(`name@version`); `sesemi inference` runs the same code.
"""

import argparse
from pathlib import Path

from sesemi.predictor import load, write_predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (examples/train_digits.py prints it)")
    parser.add_argument(
        "input",
        nargs="?",
        type=Path,
        default=Path("data/digits/val"),
        help="default: data/digits/val",
    )
    parser.add_argument("--save-dir", type=Path, default=Path("predictions"))
    args = parser.parse_args()

    predictor = load(args.run, device="auto")
    predictions = predictor.predict(args.input)  # in order; unreadable files carry .error
    for prediction in predictions[:3]:
        said = f"unreadable, {prediction.error}" if prediction.error else f"{prediction.label} ({prediction.score:.2f})"
        print(f"{prediction.input}: {said}")

    # The true class of a file in data/digits/val/<class>/ is its folder's name.
    correct = sum(p.label == Path(p.input).parent.name for p in predictions if p.error is None)
    print(f"{len(predictions)} files, {correct} predicted as the folder they are in")
    written = write_predictions(predictions, args.save_dir, predictor.labels, overwrite=True)
    print(f"wrote {written[0]}")


if __name__ == "__main__":
    main()
