"""Packaging for sesemi.

The built-in Hydra configs live in the top-level ``configs/`` folder and are installed as the
``sesemi.configs`` package, so ``open_sesemi -cn <name>`` finds them from a wheel and from an
editable install alike.
"""

from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup

HERE = Path(__file__).parent

version: dict = {}
exec((HERE / "sesemi" / "version.py").read_text(), version)

INSTALL_REQUIRES = [
    "torch>=2.1",
    "torchvision>=0.16",
    "timm>=0.9",
    "hydra-core>=1.3",
    "omegaconf>=2.3",
    "pytorch-lightning>=2.5",
    "torchmetrics>=1.0",
    "pillow>=9.0",
    "filelock>=3.0",
    "tqdm>=4.0",
    "scikit-learn>=1.0",  # only for the embedded `digits` data set
    "typer>=0.12",  # the `sesemi` command line
    "rich>=13.0",  # its tables and progress bars
    "pandas>=2.0",  # run summaries; TrainingRun takes DataFrames
    "matplotlib>=3.7",  # training curves of `sesemi postprocess`
    "safetensors>=0.4",  # published model weights (sesemi.hub), loaded without pickle
    "fsspec>=2023.1",  # model repositories: folders, memory://, s3://, gs://, ...
    "packaging>=21",  # orders published model versions
]

AUDIO_REQUIRE = [
    "soundfile>=0.12",  # wav, flac, ogg/vorbis, opus, mp3 (libsndfile in its wheel)
    "soxr>=0.3",  # resampling
    "av>=12",  # m4a/aac and wma (FFmpeg in its wheel)
]

# `sesemi export`: onnx and onnxscript write ONNX files with torch's exporter; onnxruntime runs them
EXPORT_REQUIRE = ["onnx>=1.16", "onnxscript>=0.1", "onnxruntime>=1.17"]
SHARDS_REQUIRE = ["webdataset>=0.2.90"]

# The configs and their groups (configs/method/, ...), as packages of data files: setuptools warns
# at every install about a folder under a package that is not listed as one.
CONFIG_PACKAGES = ["sesemi.configs", *(f"sesemi.configs.{group}" for group in find_namespace_packages(where="configs"))]

EXTRAS_REQUIRE = {
    # the tests read and write audio; build and twine check the packages (make package)
    "dev": [
        "pytest>=7", "pytest-xdist>=3.5", "ruff>=0.4", "build>=1.0", "twine>=5.0", "tensorboard>=2.10",
        *AUDIO_REQUIRE, *EXPORT_REQUIRE, *SHARDS_REQUIRE,
    ],
    # the documentation site (`make docs`): mkdocs.yml, with pages made by docs/gen_pages.py
    "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"],
    "audio": AUDIO_REQUIRE,
    "export": EXPORT_REQUIRE,
    # unlabeled pools streamed from WebDataset shards (the `shards` data set), through fsspec
    "shards": SHARDS_REQUIRE,
    # experiment trackers (the `logger` config group); metrics.csv needs none
    "tensorboard": ["tensorboard>=2.10"],
    "mlflow": ["mlflow>=2.0"],
    "wandb": ["wandb>=0.16"],
}

setup(
    name="sesemi",
    version=version["__version__"],
    description="Semi-supervised learning for image and audio classification",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sesemi", "sesemi.*"]) + list(CONFIG_PACKAGES),
    package_dir={"sesemi.configs": "configs"},
    package_data={package: ["*.yaml"] for package in CONFIG_PACKAGES},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "open_sesemi=sesemi.cli.open_sesemi:main",
            "sesemi=sesemi.cli.app:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
