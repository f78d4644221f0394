"""The command line: every command of this component is listed and parses its arguments."""

import pytest

from fastbert import cli


def test_commands_listed(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("bench", "profile", "encode", "kernels", "doctor"):
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


def test_the_engine_imports_no_harness_library():
    """The benchmark harness (fastbert.bench: rich tables, matplotlib plots) stays out of the engine: importing
    fastbert and running a model loads neither, nor the harness itself."""
    import subprocess
    import sys

    code = (
        "import sys, torch, fastbert\n"
        "from fastbert import BertConfig, BertModel, SentenceEncoder, ops, dispatch, doctor\n"
        "m = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,"
        " intermediate_size=32)).eval()\n"
        "m(torch.randint(0, 50, (2, 5)))\n"
        "loaded = {'rich', 'matplotlib', 'fastbert.bench'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_doctor_names_the_machine_and_every_decision_with_its_reason(capsys, tmp_path, monkeypatch):
    from fastbert import dispatch, ops

    monkeypatch.setenv("FASTBERT_CACHE_DIR", str(tmp_path))
    assert cli.main(["doctor", "--fresh"]) == 0
    out = capsys.readouterr().out
    assert "ISA flags" in out and "torch" in out and "calibration  on" in out
    if ops._cpu_kernels() is not None:
        assert f"in use: {ops.cpu_isa()}" in out
    decisions = dispatch.decisions()
    assert {d.op for d in decisions} >= {"attention"}
    for d in decisions:  # each printed with its reason; a measured one with its times and its fastest taken
        assert f"{d.op} [{d.shape_class}] -> {d.choice}: {d.reason}" in out
        if d.times:
            assert d.choice == min(d.times, key=d.times.get)
    assert "gradients are needed" in out  # why a backend declines a training call
