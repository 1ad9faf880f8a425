"""One exit-code contract: the module every command returns from, and the README's table of it,
say the same."""

from __future__ import annotations

import json
import re
import shlex
import signal

from conftest import ROOT, run_cli

from s3dlio_ray._cli import main
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.model.exit_codes import ExitCode


def readme_table() -> dict[int, str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("Exit codes, the same for every command") :]
    rows = re.findall(r"^\| ([\d /]+) \| (.+?) \|$", table, re.MULTILINE)
    codes = {}
    for numbers, meaning in rows:
        for number in numbers.split("/"):
            codes[int(number)] = meaning
    return codes


def test_the_readme_documents_every_exit_code_and_no_other():
    assert set(readme_table()) == {int(code) for code in ExitCode}


def test_errors_and_signals_map_onto_the_contract():
    assert ConfigError("x").exit_code == ExitCode.BAD_INPUT == 2
    assert S3DlioRayError("x").exit_code == ExitCode.RUN_ERROR == 1
    assert ExitCode.stopped_by(signal.SIGINT) == 130
    assert ExitCode.stopped_by(signal.SIGTERM) == 143
    assert ExitCode.CRITERION_FAILED == 3


def test_bad_input_on_any_command_exits_2(capsys, tmp_path):
    assert main(["report", str(tmp_path / "missing.json")]) == ExitCode.BAD_INPUT
    assert main(["run", "configs/quick.yaml", "--objects", "0"]) == ExitCode.BAD_INPUT
    assert main(["report", "a.json", "b.json", "--html", "x.html"]) == ExitCode.BAD_INPUT
    assert main(["cleanup", "--run-id", "r"]) == ExitCode.BAD_INPUT
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("s3dlio-ray: error: ") == 5 and "Traceback" not in err


def test_a_run_that_misses_its_au_threshold_says_fail_and_exits_3(
    moto_url, bucket, credentials, capsys, tmp_path
):
    # 11 one-sample steps of 50 ms compute behind a store capped at 5 reads a second: the
    # accelerator waits ~0.2 s a step, far below 90% busy; every byte still reads back intact.
    code = main(
        [
            "run",
            "configs/train-unet3d.yaml",
            "--endpoint",
            moto_url,
            "--bucket",
            bucket,
            "--executor",
            "local",
            "--metrics-port",
            "off",
            "--output",
            str(tmp_path / "train.json"),
            "--set",
            "dataset.num_files_train=11",
            "--set",
            "dataset.record_length_bytes=4096",
            "--set",
            "dataset.record_length_bytes_stdev=0",
            "--set",
            "reader.batch_size=1",
            "--set",
            "train.epochs=1",
            "--set",
            "train.computation_time=0.05",
            "--rate-limit",
            "5 ops/s",
            "--set",
            "phases=[datagen, train, cleanup]",
        ]
    )
    out = capsys.readouterr().out
    assert code == ExitCode.CRITERION_FAILED, out
    assert "(threshold 90%: FAIL)" in out and "FAIL: the run missed its AU threshold" in out
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["ok"] is True and saved["passed"] is False


def test_the_hints_a_kept_dataset_prints_train_on_it_and_then_remove_it(
    moto_url, boto3_s3, bucket, tmp_path
):
    """Every command a hint prints works as printed."""
    proc = run_cli(
        "run",
        "configs/train-unet3d.yaml",
        "--endpoint",
        moto_url,
        "--bucket",
        bucket,
        "--executor",
        "local",
        "--metrics-port",
        "off",
        "--output",
        str(tmp_path / "datagen.json"),
        "--set",
        "dataset.num_files_train=4",
        "--set",
        "dataset.record_length_bytes=4096",
        "--set",
        "dataset.record_length_bytes_stdev=0",
        "--set",
        "train.epochs=1",
        "--set",
        "train.computation_time=0.01",
        "--set",
        "reader.batch_size=1",
        "--set",
        "phases=[datagen]",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("dataset kept in"))
    train, remove = line.split("train on it with: ")[1].split("; remove it with: ")
    trained = run_cli(*shlex.split(train)[1:])
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "train: AU" in trained.stdout and "already holds objects" not in trained.stderr
    assert json.loads((tmp_path / "datagen.json").read_text())["phases"][0]["phase"] == "datagen"
    assert (
        json.loads((tmp_path / "datagen-train.json").read_text())["phases"][0]["phase"] == "train"
    )
    removed = run_cli(*shlex.split(remove)[1:])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "4 objects deleted" in removed.stdout
    assert boto3_s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
