"""SimMatch: the labeled inputs' embeddings vote on the pseudo-labels, and the strong views learn
their resemblance to them (simmatch.py)."""

from __future__ import annotations

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads import LinearHead
from sesemi.models.heads.loss import SimMatchLossHead, StepContext
from sesemi.models.heads.loss.base import FeatureRequest
from sesemi.models.heads.loss.simmatch import aggregate, unfold

NUM_CLASSES = 3


def test_the_vote_sums_each_class_s_similarity_and_unfolding_weighs_entries_by_their_label():
    similarity = torch.tensor([[0.5, 0.3, 0.2]])  # over three bank entries
    labels = torch.tensor([0, 0, 2])
    torch.testing.assert_close(aggregate(similarity, labels, NUM_CLASSES), torch.tensor([[0.8, 0.0, 0.2]]))
    probs = torch.tensor([[0.5, 0.0, 0.5]])
    # q_k p[label_k], normalized: 0.25, 0.15, 0.1 over 0.5
    torch.testing.assert_close(unfold(similarity, probs, labels), torch.tensor([[0.5, 0.3, 0.2]]))
    torch.testing.assert_close(unfold(similarity, torch.tensor([[0.0, 0.0, 1.0]]), labels), torch.tensor([[0.0, 0.0, 1.0]]))


def _setup(bank_size: int = 8, labels: tuple[int, ...] = (0, 1, 2, 0, 1), **options):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    heads = {"head": LinearHead(8, NUM_CLASSES)}
    loss_head = SimMatchLossHead("fixmatch", projection_dim=4, bank_size=bank_size, **options)
    loss_head.build(backbones, heads)
    loss_head.train()
    views = (torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8))
    labeled = (torch.rand(5, 3, 8, 8), torch.tensor(labels))
    batch = {"fixmatch": (views, torch.full((6,), -1)), "supervised": labeled}
    requests = [*loss_head.feature_requests(batch), FeatureRequest("supervised", labeled[0])]
    return loss_head, StepContext(batch, encode(requests, backbones), backbones, heads, step=0)


def test_the_bank_keeps_the_newest_labeled_embeddings_and_is_saved_with_the_model():
    loss_head, context = _setup(bank_size=8)
    loss_head(context)
    assert loss_head.bank_count.item() == 5 and loss_head.bank_labels[:5].tolist() == [0, 1, 2, 0, 1]
    loss_head(context)  # 10 written into 8 slots: the first two are overwritten by the newest
    assert loss_head.bank_count.item() == 10
    assert loss_head.bank_labels.tolist() == [0, 1, 2, 0, 1, 0, 1, 2]
    assert torch.linalg.vector_norm(loss_head.bank, dim=1).sub(1).abs().max() < 1e-5  # unit embeddings
    assert {"bank", "bank_labels", "bank_count"} <= set(loss_head.state_dict())


def test_the_similarity_loss_trains_the_projection_and_the_backbone():
    loss_head, context = _setup()
    outputs = loss_head(context)
    assert outputs.extra is not None and outputs.extra.ndim == 0 and outputs.extra > 0
    outputs.extra.backward()  # 5 labeled embeddings in 8 slots: the empty ones take no part
    assert loss_head.projection[0].weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in loss_head.projection.parameters())
    assert next(context.backbones["backbone"].parameters()).grad.abs().sum() > 0


def test_trains_under_bfloat16_autocast_with_a_float32_bank():
    """`trainer.precision=bf16-mixed` (on a GPU or a CPU)."""
    loss_head, context = _setup(threshold=0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = loss_head(context)
        loss = (outputs.losses * outputs.weights).mean() + outputs.extra
    loss.backward()
    assert torch.isfinite(loss) and loss_head.bank.dtype == torch.float32
    assert loss_head.projection[0].weight.grad.abs().sum() > 0


def test_the_vote_moves_the_pseudo_labels_toward_the_labeled_neighbours():
    # every labeled input is of class 2, and with smoothing 0 the bank's vote alone decides
    loss_head, context = _setup(labels=[2] * 5, threshold=0.0, smoothing=0.0)
    loss_head(context)
    assert loss_head.statistics()["pseudo_labeled_per_class"] == [0.0, 0.0, 1.0]
    loss_head, context = _setup(labels=[2] * 5, threshold=0.0, smoothing=1.0)  # the model alone
    loss_head(context)
    assert loss_head.statistics()["pseudo_labeled_per_class"] != [0.0, 0.0, 1.0]


def test_contradictory_or_impossible_options_are_refused():
    with pytest.raises(SesemiError, match="no outlier filter"):
        SimMatchLossHead("fixmatch", outlier_filter=True)
    with pytest.raises(SesemiError, match="bank_size"):
        SimMatchLossHead("fixmatch", bank_size=0)
    with pytest.raises(SesemiError, match="between 0 and 1"):
        SimMatchLossHead("fixmatch", smoothing=1.5)
    with pytest.raises(SesemiError, match="temperature"):
        SimMatchLossHead("fixmatch", temperature=0)
