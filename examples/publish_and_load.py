"""Publish a trained run to a model repository, then load it back by name and predict.

    python examples/publish_and_load.py runs/digits/flexmatch/<time>
    python examples/publish_and_load.py runs/digits/flexmatch/<time> --repository s3://bucket/models

A repository is a folder or an fsspec URL. Loading downloads the model into the cache
($SESEMI_CACHE_ROOT) and needs only sesemi: no run folder, no training code.
"""

import argparse
from pathlib import Path

import sesemi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder")
    parser.add_argument("--repository", default="models", help="a folder or fsspec URL")
    parser.add_argument("--version", default="1.0.0", help="each name@version is published once")
    args = parser.parse_args()

    uid = sesemi.hub.publish(
        args.run, "digits-example", args.version, args.repository, author="examples"
    )
    print(f"published digits-example@{args.version} as {uid}")
    for info in sesemi.hub.models(args.repository):
        print(f"  in {args.repository}: {info.reference} ({info.uid}) {info.metrics}")

    predictor = sesemi.hub.load(f"digits-example@{args.version}", repository=args.repository)
    print(f"loaded {predictor.info.reference}: classes {', '.join(predictor.labels)}")
    images = sorted(Path("data/digits/val").rglob("*.png"))[:3]
    for prediction in predictor.predict(images):
        print(f"{prediction.input}: {prediction.label} ({prediction.score:.2f})")


if __name__ == "__main__":
    main()
