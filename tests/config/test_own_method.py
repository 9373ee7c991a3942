"""Adding a method without touching the package: a loss-head module and a method config in the
user's own folder, composed with a built-in data config through Hydra's search path (`-cd`)."""

from __future__ import annotations

import csv
import sys
import textwrap

from conftest import TWO_TINY_STEPS

from sesemi import compose, run
from sesemi.config.catalog import methods

HEAD_MODULE = '''
"""A method of the project's own: confident predictions on the unlabeled images."""

from sesemi.models.heads.loss import FeatureRequest, LossHead, LossOutputs, feature_key


class ConfidenceLossHead(LossHead):
    """1 - the top class probability of each unlabeled image."""

    def _key(self):
        return feature_key(self.input_data, self.input_backbone)

    def feature_requests(self, batch):
        return [FeatureRequest(self._key(), batch[self.input_data][0], self.input_backbone)]

    def forward(self, context):
        probabilities = context.heads["head"](context.features[self._key()]).softmax(dim=1)
        return LossOutputs(1 - probabilities.max(dim=1).values)
'''

METHOD_CONFIG = """
# @package _global_
# Confidence: the project's own method, on the unlabeled pool of any data config.
defaults:
  - /loader/unlabeled@data.train.confidence
  - _self_

run:
  method: my_method
data:
  train:
    confidence:
      views: [strong]
learner:
  hparams:
    model:
      regularization_loss_heads:
        confidence:
          head:
            _target_: my_project_heads.ConfidenceLossHead
            input_data: confidence
          scale_factor: 0.5
"""


def test_a_method_from_the_users_folder_trains_on_a_built_in_data_config(
    restore_attributes, image_tree, tmp_path, monkeypatch
):
    project = tmp_path / "project"
    (project / "configs" / "method").mkdir(parents=True)
    (project / "my_project_heads.py").write_text(textwrap.dedent(HEAD_MODULE))
    (project / "configs" / "method" / "my_method.yaml").write_text(METHOD_CONFIG)
    monkeypatch.syspath_prepend(str(project))  # as when running from the project's folder
    monkeypatch.delitem(sys.modules, "my_project_heads", raising=False)
    config = compose(
        "digits",
        [
            "method=my_method",
            f"run.data_root={image_tree.root}",
            *TWO_TINY_STEPS,
        ],
        config_dir=project / "configs",  # open_sesemi -cd configs
    )
    assert config.run.method == "my_method" and "my_method" not in methods()
    result = run(config, tmp_path / "run")
    assert result.global_step == 2
    with open(result.run_dir / "metrics.csv") as file:
        logged = [float(row["train/confidence_loss"]) for row in csv.DictReader(file) if row.get("train/confidence_loss")]
    # scale_factor 0.5 x (1 - the top probability), which is at least 1/3 with 3 classes
    assert logged and all(0 < loss <= 0.5 * (1 - 1 / 3) for loss in logged)
