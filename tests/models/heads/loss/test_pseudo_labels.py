"""Confidence masks, adaptive thresholds and distribution alignment (pseudo_labels.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sesemi.errors import SesemiError
from sesemi.models.heads.linear import LinearHead
from sesemi.models.heads.loss.pseudo_labels import (
    ClassFairness,
    DistributionAlignment,
    FixedThreshold,
    FlexMatchThreshold,
    FreeMatchThreshold,
    PoolPrior,
    PoolStatistics,
    SoftMatchWeight,
    confidence_mask,
    num_classes_of,
)


def _probs(labels: list[int], confidence: float, num_classes: int = 3) -> torch.Tensor:
    """Predictions of `labels` with the given top probability, the rest spread evenly."""
    rest = (1.0 - confidence) / (num_classes - 1)
    probs = torch.full((len(labels), num_classes), rest)
    probs[torch.arange(len(labels)), torch.tensor(labels)] = confidence
    return probs


def test_num_classes_is_read_off_the_last_linear_layer():
    assert num_classes_of(LinearHead(8, 5)) == 5
    assert num_classes_of(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 7))) == 7
    with pytest.raises(ValueError, match="no nn.Linear"):
        num_classes_of(nn.Identity())


def test_confidence_mask_edges():
    """No sample passes a threshold above every confidence; all pass one below; >= counts."""
    probs = _probs([0, 1, 2], 0.9)
    assert confidence_mask(probs, 0.95).sum() == 0
    assert confidence_mask(probs, 0.5).tolist() == [1.0, 1.0, 1.0]
    assert confidence_mask(probs, 0.9).tolist() == [1.0, 1.0, 1.0]


def test_per_class_thresholds_apply_to_the_predicted_class():
    probs = _probs([0, 1, 2], 0.8)
    assert confidence_mask(probs, torch.tensor([0.9, 0.5, 0.99])).tolist() == [0.0, 1.0, 0.0]


def test_fixed_threshold_is_fixmatch():
    threshold = FixedThreshold(3, threshold=0.95)
    assert threshold(_probs([0, 1], 0.96)).tolist() == [1.0, 1.0]
    assert threshold(_probs([0, 1], 0.94)).tolist() == [0.0, 0.0]


def test_flexmatch_starts_with_zero_thresholds():
    """Warm-up: with nothing learned yet every pseudo-label counts."""
    threshold = FlexMatchThreshold(3, threshold=0.95, window=8)
    torch.testing.assert_close(threshold.class_thresholds(), torch.zeros(3))
    assert threshold(_probs([0, 1, 2], 0.4)).tolist() == [1.0, 1.0, 1.0]


def test_flexmatch_raises_the_threshold_of_a_dominating_class_only():
    """A class predicted confidently again and again gets the full threshold; the others stay low."""
    threshold = FlexMatchThreshold(3, threshold=0.95, window=8)
    threshold(_probs([0] * 8, 0.99))
    torch.testing.assert_close(threshold.class_thresholds(), torch.tensor([0.95, 0.0, 0.0]))
    assert threshold(_probs([0, 1], 0.9)).tolist() == [0.0, 1.0]


def test_flexmatch_counts_only_confident_predictions_in_a_rolling_window():
    threshold = FlexMatchThreshold(3, threshold=0.95, window=4)
    threshold(_probs([1, 1], 0.5))  # below tau: not counted
    assert (threshold.recent == -1).all()
    threshold(_probs([0, 0, 0], 0.99))
    threshold(_probs([1, 1, 1], 0.99))  # wraps around, overwriting the oldest entries
    assert sorted(threshold.recent.tolist()) == [0, 1, 1, 1] and threshold.position == 2
    beta = torch.tensor([1 / 3, 1.0, 0.0])
    torch.testing.assert_close(threshold.class_thresholds(), 0.95 * beta / (2 - beta))


def test_freematch_starts_at_one_over_c_and_follows_the_confidence():
    threshold = FreeMatchThreshold(4, momentum=0.5)
    torch.testing.assert_close(threshold.class_thresholds(), torch.full((4,), 0.25))
    mask = threshold(_probs([0, 0, 0, 0], 0.97, num_classes=4))
    assert threshold.global_threshold > 0.25
    assert mask.tolist() == [1.0] * 4


def test_freematch_dominating_class_gets_the_highest_threshold():
    threshold = FreeMatchThreshold(3, momentum=0.0)
    threshold(_probs([0, 0, 0, 1], 0.9))
    per_class = threshold.class_thresholds()
    assert per_class.argmax() == 0 and per_class[0] == pytest.approx(0.9)
    assert (per_class[1:] < per_class[0]).all()


def test_freematch_threshold_is_capped():
    threshold = FreeMatchThreshold(3, threshold=0.8, momentum=0.0)
    threshold(_probs([0, 1, 2], 0.99))
    assert threshold.class_thresholds().max() == pytest.approx(0.8)


@pytest.mark.parametrize("make", [FlexMatchThreshold, FreeMatchThreshold], ids=["flexmatch", "freematch"])
def test_min_threshold_keeps_unsure_guesses_out_from_the_start(make):
    """With a floor, the adaptive thresholds start at the floor instead of near 0, so a weak
    model's 40%-confident guesses are not pseudo-labels; confident ones still are."""
    threshold = make(3, threshold=0.95, min_threshold=0.8)
    torch.testing.assert_close(threshold.class_thresholds(), torch.full((3,), 0.8))
    assert threshold(_probs([0, 1, 2], 0.4)).sum() == 0
    assert threshold(_probs([0, 1, 2], 0.85)).tolist() == [1.0, 1.0, 1.0]


def test_softmatch_weighs_confident_pseudo_labels_fully_and_unsure_ones_by_a_gaussian():
    """Above the running mean confidence a pseudo-label weighs 1; below, exp(-d^2 / (2 var / 4))."""
    weight = SoftMatchWeight(3, momentum=0.0)
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.7, 0.2], [0.2, 0.3, 0.5]])
    confidence = torch.tensor([0.9, 0.7, 0.5])
    weights = weight(probs)
    assert weight.global_threshold == pytest.approx(0.7) and weight.variance == pytest.approx(confidence.var().item())
    expected = torch.exp(-((confidence - 0.7).clamp(max=0) ** 2) / (2 * confidence.var() / 4))
    torch.testing.assert_close(weights, expected)
    assert weights[0] == weights[1] == 1.0 and 0 < weights[2] < 1


def test_softmatch_starts_with_nearly_every_pseudo_label_counting():
    """mu starts at 1/C and sigma^2 at 1: early guesses weigh close to 1, not 0 as under a threshold."""
    weight = SoftMatchWeight(3).eval()
    assert weight(_probs([0, 1, 2], 0.2)).min() > 0.97


def test_softmatch_floor_keeps_full_weight_for_the_confident_and_a_tail_below():
    """With min_threshold 0.8, only confidences from 0.8 up weigh 1; 0.6 weighs less, but not 0."""
    weight = SoftMatchWeight(3, threshold=0.95, min_threshold=0.8).eval()
    weight.variance.fill_(0.04)
    weights = weight(torch.cat([_probs([0], 0.85), _probs([0], 0.6)]))
    assert weights[0] == 1.0
    assert weights[1] == pytest.approx(torch.exp(torch.tensor(-0.04 / 0.02)).item())
    with pytest.raises(SesemiError, match="min_threshold 0.8 is above threshold 0.7"):
        SoftMatchWeight(3, threshold=0.7, min_threshold=0.8)


def test_pool_statistics_count_a_soft_weight_from_one_half():
    statistics = PoolStatistics(2, window=4)
    statistics.record(torch.tensor([0, 1, 1, 0]), torch.tensor([1.0, 0.6, 0.4, 0.0]))
    assert statistics.summary()["pseudo_labeled_per_class"] == [0.25, 0.25]


def test_pool_statistics_are_saved_and_a_state_without_them_loads_empty():
    """Saved with the model (a resumed run describes what an unbroken one does); the state of a
    release that did not save them loads, with nothing seen; a part of them is still refused."""
    statistics = PoolStatistics(2, window=4)
    statistics.record(torch.tensor([0, 1, 1, 0]), torch.tensor([1.0, 0.6, 0.4, 0.0]))
    restored = nn.ModuleDict({"pool": PoolStatistics(2, window=4)})
    restored.load_state_dict({f"pool.{k}": v for k, v in statistics.state_dict().items()})
    assert restored["pool"].summary() == statistics.summary()
    earlier = nn.ModuleDict({"pool": PoolStatistics(2, window=4)})
    earlier.load_state_dict({})
    assert earlier["pool"].summary() is None
    with pytest.raises(RuntimeError, match="Missing key"):
        earlier.load_state_dict({"pool.recent": statistics.recent})


@pytest.mark.parametrize("make", [FlexMatchThreshold, FreeMatchThreshold], ids=["flexmatch", "freematch"])
def test_a_floor_above_the_threshold_is_refused(make):
    """A floor of 0.8 under a threshold of 0.7 would make every class threshold 0.8."""
    with pytest.raises(SesemiError, match="min_threshold 0.8 is above threshold 0.7"):
        make(3, threshold=0.7, min_threshold=0.8)
    torch.testing.assert_close(make(3, threshold=0.8, min_threshold=0.8).class_thresholds(), torch.full((3,), 0.8))


def test_a_fixed_threshold_has_no_floor():
    """FixedThreshold takes the threshold alone; it is what a pseudo-label must reach."""
    with pytest.raises(TypeError):
        FixedThreshold(3, threshold=0.7, min_threshold=0.8)
    assert FixedThreshold(3, threshold=0.7)(_probs([0, 1], 0.75)).tolist() == [1.0, 1.0]


STATEFUL = {
    "flexmatch": lambda: FlexMatchThreshold(3, window=4),
    "freematch": lambda: FreeMatchThreshold(3),
    "softmatch": lambda: SoftMatchWeight(3),
    "alignment": lambda: DistributionAlignment(3),
}


@pytest.mark.parametrize("make", STATEFUL.values(), ids=STATEFUL.keys())
def test_no_state_changes_in_eval_mode(make):
    module = make()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.eval()(_probs([0, 0], 0.99))
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before[key])


@pytest.mark.parametrize("make", STATEFUL.values(), ids=STATEFUL.keys())
def test_state_is_in_buffers_for_checkpoints(make):
    """The adaptive state changes in training and round-trips through state_dict."""
    module, fresh = make(), make()
    module(_probs([0, 0], 0.99))
    state = module.state_dict()
    assert any(not torch.equal(value, fresh.state_dict()[key]) for key, value in state.items())
    fresh.load_state_dict(state)
    for key, value in state.items():
        torch.testing.assert_close(fresh.state_dict()[key], value)


def test_distribution_alignment_counters_a_favored_class():
    """After the model favors class 0, aligned predictions shift mass to the other classes."""
    alignment = DistributionAlignment(3, momentum=0.0)
    uniform = torch.full((2, 3), 1 / 3)
    torch.testing.assert_close(alignment(uniform), uniform)
    probs = _probs([0, 0, 1], 0.6)
    aligned = alignment(probs)
    torch.testing.assert_close(aligned.sum(dim=1), torch.ones(3))
    assert (aligned[:, 0] < probs[:, 0]).all()


def test_the_pool_prior_estimate_finds_a_skewed_pools_class_shares():
    """A classifier calibrated on balanced labels, scoring a pool drawn 60/30/10: the estimate
    starts uniform and ends near the pool's shares, which its plain predictions are not."""
    generator = torch.Generator().manual_seed(0)
    truth = torch.tensor([0.6, 0.3, 0.1])
    means = torch.tensor([-1.0, 0.0, 1.0])
    prior = PoolPrior(3, momentum=0.9)
    torch.testing.assert_close(prior.log_prior().softmax(dim=0), torch.full((3,), 1 / 3))
    plain = []
    for _ in range(300):
        classes = torch.multinomial(truth, 256, replacement=True, generator=generator)
        x = means[classes] + torch.randn(256, generator=generator)
        logits = -0.5 * (x[:, None] - means) ** 2  # log p(x | y): the balanced classifier's logits
        plain.append(logits.softmax(dim=1).mean(dim=0))
        prior.update((logits + prior.log_prior()).softmax(dim=1))
    torch.testing.assert_close(prior.prior, truth, atol=0.04, rtol=0)
    assert (torch.stack(plain).mean(dim=0) - truth).abs().max() > 0.1
    prior.eval()
    prior.update(torch.eye(3)[[2, 2]])
    torch.testing.assert_close(prior.prior, truth, atol=0.04, rtol=0)


def test_class_fairness_is_freematchs_term_on_the_counted_strong_views():
    """-H(SumNorm(p_t / h_t), SumNorm(mean q / hist q)), worked by hand: p_t (0.3, 0.2) over
    h_t (0.5, 0.5) gives (0.6, 0.4); the counted views q (0.8, 0.2) and (0.3, 0.7), one of each
    class, give (0.55, 0.45); the third view weighs 0 and does not count."""
    fairness = ClassFairness(2)
    fairness.class_probs.copy_(torch.tensor([0.3, 0.2]))
    fairness.class_histogram.copy_(torch.tensor([0.5, 0.5]))
    logits = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.01, 0.99]]).log()
    term = fairness(logits, torch.tensor([1.0, 1.0, 0.0]))
    assert term.item() == pytest.approx(0.6 * math.log(0.55) + 0.4 * math.log(0.45), abs=1e-6)
    assert fairness(logits, torch.zeros(3)).item() == 0.0  # nothing counted, no term


def test_class_fairness_divides_by_the_histograms_so_a_class_missing_from_the_batch_weighs_0():
    """Views that all predict class 0 leave the batch's side at (1, 0): the term is then
    the model side's weight of class 1 times log(1e-12), finite, and gives no gradient."""
    fairness = ClassFairness(2)
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0]], requires_grad=True)
    term = fairness(logits, torch.ones(2))
    assert term.item() == pytest.approx(0.5 * math.log(1e-12), rel=1e-5)
    term.backward()
    assert logits.grad.abs().max() < 1e-6


def test_class_fairness_follows_the_pool_from_one_over_c():
    """p_t and h_t start uniform and move towards the batch's mean prediction and histogram."""
    fairness = ClassFairness(3, momentum=0.5)
    torch.testing.assert_close(fairness.class_histogram, torch.full((3,), 1 / 3))
    probs = _probs([0, 0, 0, 1], 0.9)
    fairness.update(probs)
    torch.testing.assert_close(fairness.class_histogram, (torch.full((3,), 1 / 3) + torch.tensor([0.75, 0.25, 0.0])) / 2)
    torch.testing.assert_close(fairness.class_probs, (torch.full((3,), 1 / 3) + probs.mean(dim=0)) / 2)


def _update_on_each_process(rank: int, port: int, folder: str) -> None:
    """One of two processes: updates every statistic from its own share of a batch (3 confident
    samples of class 0 on the first, 5 of class 1 on the second) and saves what it then holds."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    probs = _probs([0] * 3, 0.98) if rank == 0 else _probs([1] * 5, 0.96)
    statistics = [FlexMatchThreshold(3, 0.95), FreeMatchThreshold(3), DistributionAlignment(3), PoolPrior(3), ClassFairness(3)]
    for module in statistics[:3]:
        module.train()(probs)
    for module in statistics[3:]:
        module.train().update(probs)
    pool = PoolStatistics(3)
    pool.record(probs.argmax(dim=1), torch.ones(len(probs)))
    statistics.append(pool)
    torch.save([module.state_dict() | {"summary": pool.summary()} for module in statistics], f"{folder}/{rank}.pt")
    torch.distributed.destroy_process_group()


def test_in_a_distributed_run_the_statistics_learn_from_every_process_batch(tmp_path):
    """Two processes with batches of different sizes end with the same statistics, those one
    process updates from the whole batch: DDP would otherwise overwrite them before each step
    with the first process's, which saw only its share of the pool."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    torch.multiprocessing.start_processes(
        _update_on_each_process, args=(port, str(tmp_path)), nprocs=2, start_method="fork"
    )
    first, second = (torch.load(tmp_path / f"{rank}.pt", weights_only=False) for rank in (0, 1))
    whole = torch.cat([_probs([0] * 3, 0.98), _probs([1] * 5, 0.96)])
    alone = [FlexMatchThreshold(3, 0.95), FreeMatchThreshold(3), DistributionAlignment(3), PoolPrior(3), ClassFairness(3)]
    for module in alone[:3]:
        module.train()(whole)
    for module in alone[3:]:
        module.train().update(whole)
    for on_first, on_second, expected in zip(first, second, alone, strict=False):
        for key, value in expected.state_dict().items():
            assert torch.equal(on_first[key], on_second[key]), key
            assert torch.allclose(on_first[key].float(), value.float()), key
    assert first[0]["recent"][:8].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]  # FlexMatch counts both processes' classes
    assert first[5]["summary"]["seen"] == second[5]["summary"]["seen"] == 8
