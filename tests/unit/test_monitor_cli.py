"""The monitor's commands say what is wrong in one line, before touching Kafka."""

from __future__ import annotations

import pytest

from triage.cli.main import build_parser, main


def test_a_correction_needs_an_id_and_exactly_one_verdict(capsys):
    assert main(["correct", "--id", "", "--label", "a"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["triage correct: error: --id: String should have at least 1 character"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["correct", "--id", "1", "--label", "a", "--none-of-ours"])


def test_corrections_from_a_file_say_which_line_is_wrong(capsys, tmp_path):
    bad = tmp_path / "fixes.tsv"
    bad.write_text("a1\tcard_arrival\n\n\trefund_request\n", encoding="utf-8")
    assert main(["correct", "--file", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"triage correct: error: {bad} line 3: id: String should have at least 1 character"
    ]
    for args in (
        ["correct"],
        ["correct", "--id", "1", "--file", str(bad)],
        ["correct", "--id", "1"],
    ):
        assert main(args) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_monitor_and_quality_take_several_models_folders():
    args = build_parser().parse_args(["monitor", "--models", "a", "--models", "b"])
    assert [str(m) for m in args.models] == ["a", "b"]
    assert build_parser().parse_args(["quality", "--json"]).models == []


def test_a_missing_models_folder_is_one_line(capsys, tmp_path):
    missing = tmp_path / "nope"
    assert main(["quality", "--models", str(missing), "--bootstrap-servers", "h:1"]) == 2
    assert "no such models folder" in capsys.readouterr().err
