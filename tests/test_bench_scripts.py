"""Bad options of the diagnostic bench scripts fail in one line, before any simulation."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "drivegpt-rlhf", "--caution", "0"], "every --caution level in (0, 1]"),
        (["--policy", "drivegpt-rlhf", "--episodes", "0"], "--episodes and --workers"),
        (["--policy", "human"], "--policy human: not a DriveGPT with accel tokens"),
        (["--policy", "drivegpt:no/such/run"], "no/such/run/policy.json: missing"),
    ],
)
def test_junction_decisions_refuses_bad_options(tmp_path, args, message):
    r = run("junction_decisions.py", *args, "--out", str(tmp_path / "x.md"))
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.md").exists()


def test_is_second_moment_refuses_no_resims_and_a_missing_bound(tmp_path):
    r = run("is_second_moment.py", "--family", "slower_lead", "--parts", "bound", "--resims", "0")
    assert r.returncode == 2 and "--resims must be >= 1" in r.stderr.strip().splitlines()[-1]
    r = run("is_second_moment.py", "--family", "slower_lead", "--parts", "fits", "--out", str(tmp_path))
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("no ")
