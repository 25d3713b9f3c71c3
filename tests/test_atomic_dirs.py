"""Directory swaps: a reader sees the old directory or the new one, and a kill between the two
renames is repaired from whichever copy is whole."""

import os

import pytest

from discovery.atomic import recover_dir, replace_dir, staging_dir


def _write(d, text, marker=True):
    d.mkdir(parents=True, exist_ok=True)
    (d / "data.txt").write_text(text)
    if marker:
        (d / "card.json").write_text("{}")


def test_replace_dir_swaps_and_refuses_an_incomplete_stage(tmp_path):
    dst = tmp_path / "model"
    _write(dst, "old")
    _write(staging_dir(dst), "new", marker=False)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        replace_dir(dst, "card.json")
    assert (dst / "data.txt").read_text() == "old"
    (staging_dir(dst) / "card.json").write_text("{}")
    replace_dir(dst, "card.json")
    assert (dst / "data.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("stage_whole, expect", [(True, "new"), (False, "old")])
def test_recover_dir_after_a_kill_between_the_renames(tmp_path, stage_whole, expect):
    dst = tmp_path / "model"
    _write(dst, "old")
    _write(staging_dir(dst), "new", marker=stage_whole)
    os.replace(dst, dst.with_name("model.old"))  # killed here, inside replace_dir
    recover_dir(dst, "card.json")
    assert (dst / "data.txt").read_text() == expect
    recover_dir(dst, "card.json")  # nothing to do once it is there
    assert (dst / "data.txt").read_text() == expect
