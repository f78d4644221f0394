"""The command line: every command of this component is listed and parses its arguments."""

import pytest

from fastbert import cli


def test_commands_listed(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("bench", "profile", "encode", "kernels"):
        assert name in out


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--preset", "engine-cpu", "--reps", "3"],
        ["bench", "--model", "tiny", "--modes", "infer,train", "--batch-sizes", "1,8", "--dists", "uniform"],
        ["profile", "--model", "tiny", "--mode", "train"],
        ["encode", "-", "-o", "x.npy", "--batch-size", "64"],
    ],
)
def test_arguments_parse(argv):
    args = cli.build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_encode_rejects_unknown_suffix(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("hello\n")
    assert cli.main(["encode", str(src), "-o", str(tmp_path / "out.csv")]) == 2
