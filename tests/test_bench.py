"""Benchmarks write where they are told, record the machine they ran on, and never touch the committed results
unless asked (--update)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import mujoco

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_benchmark_writes_where_told_records_the_machine_and_leaves_committed_results_alone(tmp_path):
    before = digest(RESULTS)
    res = subprocess.run([sys.executable, "bench/experts.py", "--episodes", "1", "--out-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert digest(RESULTS) == before
    result = json.loads((tmp_path / "experts.json").read_text())
    machine = result["machine"]
    assert machine["cpu"]["model"] not in ("", "unknown")
    assert len(machine["git"]["commit"]) == 40
    assert machine["packages"]["mujoco"] == mujoco.__version__ and "torch" in machine["packages"]
    assert f"wrote {tmp_path / 'experts.json'}" in res.stdout


def test_committed_results_are_written_only_with_update():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import argparse

        from common import DEFAULT_OUT, add_output_args

        parser = argparse.ArgumentParser()
        add_output_args(parser)
        assert parser.parse_args([]).out_dir == DEFAULT_OUT and not parser.parse_args([]).update
        assert parser.parse_args(["--update"]).update
    finally:
        sys.path.remove(str(ROOT / "bench"))
