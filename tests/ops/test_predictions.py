"""Predictions of many files as a table (sesemi/ops/predictions.py), with a stand-in predictor
whose files say how many windows they have (`clip3.png`: 3 windows; `bad*`: unreadable)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.ops.predictions import predict, read_inputs, table


class StandIn:
    """What `predict` and `table` use of a Predictor: labels, model.backbone, predict_windows."""

    labels = ["no", "yes"]
    audio = False

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Module()
        self.model.backbone = torch.nn.Linear(3, 4)
        self.calls: list[int] = []

    def accepts(self, path: Path) -> bool:
        return path.suffix == ".png"

    def predict_windows(self, paths, batch_size, **options):
        self.calls.append(len(paths))
        results = []
        for path in paths:
            if Path(path).name.startswith("bad"):
                results.append(None)
                continue
            windows = int(Path(path).stem[-1])
            inputs = torch.arange(windows * 3, dtype=torch.float32).reshape(windows, 3) + len(
                str(path)
            )
            results.append(self.model.backbone(inputs)[:, :2].softmax(dim=1).detach())
        return results


def test_embeddings_follow_their_files_across_chunks():
    """Files are predicted in chunks of `batch_size`; each readable file's features are its own
    windows' backbone outputs, whatever chunk it fell in; progress counts files."""
    predictor = StandIn()
    paths = [Path(name) for name in ("clip2.png", "bad1.png", "clip3.png", "clip1.png", "bad2.png")]
    done: list[int] = []
    result = predict(predictor, paths, batch_size=2, embeddings=True, progress=done.append)
    assert predictor.calls == [2, 2, 1] and done == [2, 4, 5]
    assert [None if w is None else len(w) for w in result.windows] == [2, None, 3, 1, None]
    assert result.features[1] is None and result.features[4] is None
    expected = predictor.model.backbone(torch.arange(9, dtype=torch.float32).reshape(3, 3) + 9)
    assert torch.allclose(result.features[2], expected.detach())


def test_table_rows_per_file_or_per_window():
    predictor = StandIn()
    paths = [Path("clip2.png"), Path("bad1.png"), Path("clip3.png")]
    result = predict(predictor, paths, batch_size=8, embeddings=True)
    frame, embeddings = table(result, predictor)
    assert list(frame.columns) == ["path", "label", "score", "no", "yes"]
    assert frame["path"].tolist() == ["clip2.png", "clip3.png"] and embeddings.shape == (2, 4)
    assert frame.loc[0, "yes"] == pytest.approx(float(result.windows[0][:, 1].mean()))
    assert frame.loc[0, "score"] == pytest.approx(max(frame.loc[0, "no"], frame.loc[0, "yes"]))
    frame, embeddings = table(result, predictor, per_window=True, window=1.0, hop=0.5)
    assert list(frame.columns[:3]) == ["path", "start", "end"] and len(frame) == 5 == len(
        embeddings
    )
    assert frame[["start", "end"]].values.tolist()[2:] == [[0.0, 1.0], [0.5, 1.5], [1.0, 2.0]]


def test_inputs_from_a_folder_a_file_or_a_list(tmp_path):
    predictor = StandIn()
    for name in ("a/clip1.png", "b/clip2.png", "b/notes.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert read_inputs(tmp_path, predictor) == [tmp_path / "a/clip1.png", tmp_path / "b/clip2.png"]
    assert read_inputs(tmp_path / "a/clip1.png", predictor) == [tmp_path / "a/clip1.png"]
    listing = tmp_path / "inputs.txt"
    listing.write_text("# new files\nb/clip2.png\n\na/clip1.png\n")
    assert read_inputs(listing, predictor) == [tmp_path / "b/clip2.png", tmp_path / "a/clip1.png"]
    listing.write_text("a/clip1.png\nc/gone.png\n")
    with pytest.raises(
        SesemiError, match="1 files listed in .*inputs.txt do not exist, e.g. .*gone.png"
    ):
        read_inputs(listing, predictor)
    with pytest.raises(SesemiError, match="is not an image file, a folder, or a .txt file"):
        read_inputs(tmp_path / "b/notes.md", predictor)
    with pytest.raises(SesemiError, match="does not exist"):
        read_inputs(tmp_path / "nothing", predictor)
