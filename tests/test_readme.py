"""Every Python block of the README runs as written, its placeholders (an endpoint, a bucket, a
cluster address, a results folder) mapped to the suite's own."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, cli_env

pytestmark = pytest.mark.integration


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)


def test_the_readme_has_the_python_blocks_this_test_knows():
    assert len(python_blocks()) == 2


def mapped(block: str, placeholders: dict[str, str]) -> str:
    """The block with each placeholder replaced; every placeholder must be there (a README that
    changed its example changes this test too)."""
    for placeholder, value in placeholders.items():
        assert placeholder in block, placeholder
        block = block.replace(placeholder, value)
    return block


def run_block(code: str, ray_address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=cli_env(RAY_ADDRESS=ray_address),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_from_python_example(ray_cluster, tmp_path):
    code = mapped(python_blocks()[0], {'"results/"': repr(f"{tmp_path}/")})
    proc = run_block(code + "\nassert report.ok and not result.ok\n", ray_cluster.address)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RunReport(ok=True, results=[RunResult('quick'" in proc.stdout
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".csv", ".html", ".json"]


def test_the_ray_program_example(ray_cluster, moto_url, bucket):
    code = mapped(
        python_blocks()[1],
        {
            'address="auto"': f"address={ray_cluster.address!r}",
            "http://minio.example:9000": moto_url,
            'bucket="bench"': f"bucket={bucket!r}",
        },
    )
    proc = run_block(code + "\nassert report.ok, report.error\n", ray_cluster.address)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
