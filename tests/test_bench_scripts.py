"""Bad options of the diagnostic bench scripts fail in one line, before any simulation."""

import contextlib
import io
import json
import runpy
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python bench/SCRIPT ARGS`` in this process, with its exit code, stdout and stderr as a
    subprocess would give them (a fresh interpreter spends about 4 s importing torch, per call)."""
    argv, path, threads, modules = sys.argv, list(sys.path), torch.get_num_threads(), set(sys.modules)
    cmd, out, err, code = [str(BENCH / script), *args], io.StringIO(), io.StringIO(), 0
    sys.argv = list(cmd)
    sys.path.insert(0, str(BENCH))  # as for a script: its folder first
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(BENCH / script), run_name="__main__")
    except SystemExit as e:  # argparse's errors exit 2; a message exits 1, as the interpreter does
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if isinstance(e.code, str):
            err.write(e.code + "\n")
    except Exception:  # uncaught: a traceback and exit 1
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv, sys.path[:] = argv, path
        torch.set_num_threads(threads)  # the scripts run with one thread
        for name in set(sys.modules) - modules:  # bench modules it imported: a next run imports them anew
            if str(BENCH) in str(getattr(sys.modules[name], "__file__", None) or ""):
                del sys.modules[name]
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "drivegpt-rlhf", "--caution", "0"], "every --caution level in (0, 1]"),
        (["--policy", "drivegpt-rlhf", "--episodes", "0"], "--episodes and --workers"),
        (["--policy", "human"], "--policy human: not a DriveGPT with accel tokens"),
        (["--policy", "drivegpt:no/such/run"], "no/such/run/policy.json: missing"),
        (["--policy", "drivegpt-rlhf", "--probe", "--episodes", "4"], "--probe needs --episodes >= 8"),
    ],
)
def test_junction_decisions_refuses_bad_options(tmp_path, args, message):
    r = run("junction_decisions.py", *args, "--out", str(tmp_path / "x.md"))
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.md").exists()


def test_junction_decisions_auc_by_hand():
    sys.path.insert(0, str(BENCH))
    try:
        from junction_decisions import auc
    finally:
        sys.path.remove(str(BENCH))
    pos = np.array([True, True, False, False])
    assert auc(np.array([3.0, 2.0, 1.0, 0.0]), pos) == 1.0  # every positive above every negative
    assert auc(np.array([0.0, 1.0, 2.0, 3.0]), pos) == 0.0
    assert auc(np.ones(4), pos) == 0.5  # ties count half
    # positives 2 and 0 against negatives 1 and 1: 2 beats both, 0 beats none -> 2 of 4 pairs
    assert auc(np.array([2.0, 0.0, 1.0, 1.0]), pos) == 0.5
    assert auc(np.array([2.0, 1.0, 1.0, 0.0]), pos) == 0.875  # 2 > both, 1 > 0, 1 ties 1: 3.5 of 4


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("proposal_shapes.py", ["--family", "slower_lead", "--cells", "1"], "--cells >= 2"),
        ("proposal_shapes.py", ["--family", "slower_lead", "--defensive", "1.5"], "--defensive in (0, 1)"),
        ("halfspace_proposal.py", ["--proposal", "p.json", "--failures", ".", "--halves", "0.99"],
         "every --halves share in (0, 1 - defensive)"),
        ("halfspace_proposal.py", ["--proposal", "p.json", "--failures", ".", "--sims", "10"],
         "--sims >= 100"),
        ("halfspace_proposal.py", ["--proposal", "absent.json", "--failures", "."],
         "absent.json: no such proposal"),
    ],
)  # fmt: skip
def test_proposal_shape_scripts_refuse_bad_options_in_one_line(tmp_path, monkeypatch, script, args, message):
    monkeypatch.chdir(tmp_path)
    r = run(script, *args, "--out", str(tmp_path / "out.md"))
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "out.md").exists()


def test_proposal_shapes_refuses_a_bound_file_of_other_failures(tmp_path):
    """The bound's per-failure h must be the streams' failures, one for one."""
    d = 2
    z = np.random.default_rng([7, d]).standard_normal((100, d))
    idx = np.array([3, 50])  # failures at draws 3 and 50 of stream 7
    np.savez(tmp_path / "toy-failures-7.npz", z=z[idx], seeds=7 * 10**7 + idx, sims=100, seconds=0.0)
    np.savez(tmp_path / "toy-bound.npz", fails=np.array([40.0]), n=np.array([40.0]))  # one, not two
    r = run("proposal_shapes.py", "--family", "toy", "--out", str(tmp_path))
    assert r.returncode == 1 and "toy-bound.npz: 1 failures, the streams 2" in r.stderr, r.stderr


def test_halfspace_blend_by_hand():
    from statistics import NormalDist

    from drivegpt.corner.mixture import GaussianMixture

    sys.path.insert(0, str(BENCH))
    try:
        from halfspace_proposal import blend_ratio, logistic_direction
    finally:
        sys.path.remove(str(BENCH))
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 3))
    a = logistic_direction(z, z[:, 0] + z[:, 1] > 1.0)  # failure past a plane: its normal, (1, 1, 0) / √2
    np.testing.assert_allclose(a, [2**-0.5, 2**-0.5, 0.0], atol=0.02)
    # q / p of 0.5 p 1_H / P(H) + 0.3 m + 0.2 p, H = {z_0 > 1}, m = N((2, 0), I) in 2-D
    m = GaussianMixture(np.array([1.0]), np.array([[2.0, 0.0]]), np.eye(2)[None])
    pts = np.array([[1.5, 0.0], [0.0, 0.0]])  # inside H, outside it
    p_h = 1 - NormalDist().cdf(1.0)
    m_over_p = np.exp(-0.5 * (pts[:, 0] - 2) ** 2 + 0.5 * pts[:, 0] ** 2)  # N((2, 0), I) / N(0, I)
    expected = 0.5 * np.array([1.0, 0.0]) / p_h + 0.3 * m_over_p + 0.2
    np.testing.assert_allclose(blend_ratio(pts, np.array([1.0, 0.0]), 1.0, m, 0.5, 0.2), expected)


def test_proposal_shapes_tilt_relative_variance_by_hand():
    from statistics import NormalDist

    sys.path.insert(0, str(BENCH))
    try:
        from proposal_shapes import tilt_relvar
    finally:
        sys.path.remove(str(BENCH))
    z, failed = np.array([[-1.0], [0.5], [1.0], [2.0]]), np.array([False, False, True, True])
    # two cells cut at the failures' median, 1.5: the first holds 3 draws and 1 failure, the second 1 and 1
    mass = np.array([NormalDist().cdf(1.5), 1 - NormalDist().cdf(1.5)])  # nominal mass of each cell
    g = np.sqrt([1 / 3, 1.0]) / (mass * np.sqrt([1 / 3, 1.0])).sum()  # q / p in each cell, no defensive
    expected = (1 / g[0] + 1 / g[1]) / 4 / 0.5**2 - 1  # mean of f p / q over the 4 draws, / P^2, - 1
    assert tilt_relvar((z, failed), (z, failed), (0,), 0.0, 2) == pytest.approx(expected)
    # all defensive: the proposal is the naturalistic law itself, Monte Carlo's 1 / P - 1
    assert tilt_relvar((z, failed), (z, failed), (0,), 1.0, 2) == pytest.approx(1 / 0.5 - 1)
    # two coordinates cut at their failures' medians, x at 1.5 and y at 1.0: four cells, failure
    # shares 1/3 (low x, low y), 1/2 (high x, low y), 1/3 (low x, high y), 1 (both high)
    fail = [(2.0, 0.0), (1.0, 2.0), (2.5, 2.5), (0.0, 0.0)]
    safe = [(-1.0, -1.0), (3.0, 0.5), (0.5, 3.0), (-2.0, 0.5), (1.0, 4.0)]
    z2, f2 = np.array(fail + safe), np.array([True] * 4 + [False] * 5)
    h = {(0, 0): 1 / 3, (1, 0): 1 / 2, (0, 1): 1 / 3, (1, 1): 1.0}
    nd = NormalDist()
    px, py = {0: nd.cdf(1.5), 1: 1 - nd.cdf(1.5)}, {0: nd.cdf(1.0), 1: 1 - nd.cdf(1.0)}
    m = {(i, j): px[i] * py[j] for i in (0, 1) for j in (0, 1)}  # the cells' nominal masses
    norm = sum(m[c] * h[c] ** 0.5 for c in m)
    g = {c: 0.9 * h[c] ** 0.5 / norm + 0.1 for c in m}  # q / p, defensive 0.1
    assert sum(m[c] * g[c] for c in m) == pytest.approx(1.0)  # q integrates to 1
    cells = [(int(x > 1.5), int(y > 1.0)) for x, y in fail]
    expected = sum(1 / g[c] for c in cells) / 9 / (4 / 9) ** 2 - 1
    assert tilt_relvar((z2, f2), (z2, f2), (0, 1), 0.1, 2) == pytest.approx(expected)


def test_proposal_shapes_tree_by_hand():
    from statistics import NormalDist

    sys.path.insert(0, str(BENCH))
    try:
        from proposal_shapes import grow_tree, tree_relvar
    finally:
        sys.path.remove(str(BENCH))
    nd = NormalDist()
    # six failures (1-D), one candidate cut: their median, 2.35. Splitting there lowers
    # sum sqrt(P_b c_b) from sqrt(1 * 6) = 2.45 to sqrt(0.9906 * 3) + sqrt(0.0094 * 3) = 1.89
    zf = np.array([[-3.0], [2.1], [2.2], [2.5], [2.8], [3.0]])
    leaves = grow_tree(zf, min_leaf=1, max_leaves=2, cuts=1)
    assert len(leaves) == 2
    (lo0, hi0, i0), (lo1, hi1, i1) = leaves
    assert hi0[0] == lo1[0] == pytest.approx(2.35) and (len(i0), len(i1)) == (3, 3)
    # the relative variance by hand on 10 draws (the six failures and four safe ones), no defensive
    z = np.r_[zf[:, 0], [-1.0, 0.0, 0.5, 1.0]][:, None]
    failed = np.r_[np.ones(6, bool), np.zeros(4, bool)]
    mass = np.array([nd.cdf(2.35), 1 - nd.cdf(2.35)])  # the leaves' exact nominal masses
    g = np.sqrt(np.array([3.0, 3.0]) / mass)
    g = g / (mass * g).sum()  # q / p in each leaf
    expected = (3 / g[0] + 3 / g[1]) / 10 / 0.6**2 - 1
    assert tree_relvar(leaves, (z, failed), 0.0, 0.0) == pytest.approx(expected)
    # all defensive, or a single leaf: the law itself, Monte Carlo's 1 / P - 1
    assert tree_relvar(leaves, (z, failed), 1.0, 0.0) == pytest.approx(1 / 0.6 - 1)
    one = grow_tree(zf, min_leaf=4, max_leaves=8)  # no split leaves both sides 4 failures
    assert len(one) == 1 and tree_relvar(one, (z, failed), 0.0, 1.0) == pytest.approx(1 / 0.6 - 1)


def test_is_second_moment_refuses_no_resims_and_a_missing_bound(tmp_path):
    r = run("is_second_moment.py", "--family", "slower_lead", "--parts", "bound", "--resims", "0")
    assert r.returncode == 2 and "--resims must be >= 1" in r.stderr.strip().splitlines()[-1]
    r = run("is_second_moment.py", "--family", "slower_lead", "--chunk", "0", "--out", str(tmp_path))
    assert r.returncode == 2 and "--chunk must be >= 1, got 0" in r.stderr.strip().splitlines()[-1]
    r = run("is_second_moment.py", "--family", "slower_lead", "--ce-refine", "-1", "--out", str(tmp_path))
    assert r.returncode == 2 and "--ce-refine must be >= 0, got -1" in r.stderr.strip().splitlines()[-1]
    r = run("is_second_moment.py", "--family", "slower_lead", "--device", "gpu", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown device 'gpu'; valid: auto, cpu" in r.stderr.strip().splitlines()[-1]
    r = run("is_second_moment.py", "--family", "slower_lead", "--parts", "fits", "--out", str(tmp_path))
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("no ")
    r = run("is_second_moment.py", "--family", "slower_lead", "--parts", "rare", "--out", str(tmp_path))
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("no ")


def test_efficacy_reuses_a_drive_only_with_the_same_weights(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        from efficacy import reused, weights
    finally:
        sys.path.remove(str(BENCH))
    drive = {"episodes": 10, "collision_rate": 0.1}
    rows = [
        {"policy": "rlhf", "spec": "drivegpt-rlhf", "weights": "aaa", "batched": drive},
        {"policy": "old", "spec": "drivegpt-rlhf", "batched": drive},  # driven before rows named weights
        {"policy": "ppo", "spec": "sb3-ppo:elsewhere", "weights": None, "batched": drive},
    ]
    f = tmp_path / "HighwayDense-v0.json"
    f.write_text(json.dumps({"env": "drivegpt/HighwayDense-v0", "rows": rows}))
    key = ([f], "drivegpt/HighwayDense-v0")
    assert reused(*key, "rlhf", "drivegpt-rlhf", "batched", 10, "aaa")["reused_from"] == str(f)
    assert reused(*key, "rlhf", "drivegpt-rlhf", "batched", 10, "bbb") is None  # the checkpoint was replaced
    assert reused(*key, "old", "drivegpt-rlhf", "batched", 10, "aaa") is None  # unknown weights: drive again
    assert reused(*key, "rlhf", "drivegpt-rlhf", "batched", 20, "aaa") is None  # other episode count
    assert reused(*key, "ppo", "sb3-ppo:elsewhere", "batched", 10, weights("sb3-ppo:elsewhere")) is not None
    assert weights("drivegpt") is not None and weights("human") is None


def test_family_rates_refuses_a_json_out_that_would_overwrite_its_record(tmp_path):
    r = run("family_rates.py", "--policies", "human", "--out", str(tmp_path / "rates.json"))
    assert r.returncode == 2 and "name the table" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "rates.json").exists()


def test_estimate_batched_summary_without_a_monte_carlo_truth(tmp_path):
    """A learned policy's runs have no 10⁶-run truth: accelerations at the runs' mean, no coverage; a
    family whose runs found no failure shows plain Monte Carlo's bound, not an estimate."""
    sys.path.insert(0, str(BENCH))
    try:
        from estimate_batched import Z95, summarise, write_markdown
    finally:
        sys.path.remove(str(BENCH))

    def run_(p: float, rel: float | None, ci: list[float], failures: int) -> dict:
        return {"p": p, "rel_halfwidth": rel, "ci": ci, "sims": 1000, "failures": failures,
                "degenerate": False, "converged": rel is not None}  # fmt: skip

    two = [run_(1e-4, 0.2, [8e-5, 1.2e-4], 50), run_(3e-4, 0.2, [2.4e-4, 3.6e-4], 50)]
    found = {"family": "f", "policy": "x", "is": {"runs": two}}
    none = {"family": "g", "policy": "x", "is": {"runs": [run_(0.0, None, [0.0, 3e-3], 0)]}}
    for r in (found, none):
        summarise(r, 0.2)
    s = found["summary"]
    assert s["mc_p"] is None and s["coverage_ci"] is None and s["is_covers_mc"] is None
    assert s["reference_p"] == pytest.approx(2e-4)  # the mean of 1e-4 and 3e-4
    # MC needs Z95² (1 - p) / (p r²) at r = 0.2 and p = 2e-4; each run used 1,000
    assert s["acceleration_median"] == pytest.approx(Z95**2 * (1 - 2e-4) / (2e-4 * 0.04) / 1000)
    assert none["summary"]["is_valid_runs"] == 0 and none["summary"]["reference_p"] == 0.0
    for r in (found, none):
        (tmp_path / f"{r['family']}.json").write_text(json.dumps(r))
    write_markdown(tmp_path)
    rows = (tmp_path / "results.md").read_text().splitlines()
    assert "(accelerations at the IS mean)" in rows[2] and "0.0002 |" in rows[2]
    assert "no failure: < 0.003 (Wilson 95%)" in rows[3]


@pytest.mark.parametrize("script", ["is_second_moment.py", "estimate_batched.py"])
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("nosuch", "unknown policy spec 'nosuch'"),
        ("drivegpt:no/such/run", "no/such/run/policy.json: missing"),
    ],
)
def test_family_estimates_refuse_a_bad_policy_in_one_line(tmp_path, script, policy, message):
    one = script == "is_second_moment.py"
    family, part = ("--family", "bound") if one else ("--families", "is")
    r = run(script, family, "slower_lead", "--policy", policy, "--parts", part, "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


def test_mc_failures_are_one_stream_however_chunked_resumed_or_capped(tmp_path):
    """``is_second_moment.failures``: the same draws, seeds and failures in chunks of 7 or 64, in one
    run or resumed after a run stopped by its time cap (which stops before any chunk when 0)."""
    sys.path.insert(0, str(BENCH))
    try:
        from is_second_moment import failures
    finally:
        sys.path.remove(str(BENCH))

    class Dist:  # the identity law in 2 dimensions
        dim = 2

        @staticmethod
        def to_params(z):
            return z

    def sim(params, seeds):  # fails where z0 > 1.5 (6.7% of draws)
        return (params[:, 0] > 1.5).astype(float)

    def kept(path):
        d = np.load(path)
        return d["z"], d["seeds"], int(d["sims"])

    failures(sim, Dist, tmp_path / "a.npz", 3, 64, chunk=64)
    failures(sim, Dist, tmp_path / "b.npz", 3, 64, chunk=7)
    failures(sim, Dist, tmp_path / "c.npz", 3, 64, chunk=7, seconds_cap=0.0)  # stops before a chunk
    assert not (tmp_path / "c.npz").exists()
    failures(sim, Dist, tmp_path / "c.npz", 3, 21, chunk=7)  # stopped after 21 draws, then resumed
    failures(sim, Dist, tmp_path / "c.npz", 3, 64, chunk=16)
    (za, sa, na), (zb, sb, nb), (zc, sc, nc) = (
        kept(tmp_path / "a.npz"),
        kept(tmp_path / "b.npz"),
        kept(tmp_path / "c.npz"),
    )
    rows = np.random.default_rng([3, 2]).standard_normal((64, 2))
    assert na == nb == nc == 64 and len(za) == int((rows[:, 0] > 1.5).sum()) > 0
    np.testing.assert_array_equal(za, rows[rows[:, 0] > 1.5])
    np.testing.assert_array_equal(sa, 3 * 10**7 + np.flatnonzero(rows[:, 0] > 1.5))
    for z, s in ((zb, sb), (zc, sc)):
        np.testing.assert_array_equal(z, za)
        np.testing.assert_array_equal(s, sa)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "ego_speed", "wheelbase"], "stalled_car has no parameter wheelbase; valid: ego_speed"),
        (["--seeds", "0"], "--seeds and --batch must be >= 1"),
        (["--policies", "drivegpt:no/such/run"], "no/such/run/policy.json: missing"),
    ],
)
def test_policy_corners_refuses_bad_options(tmp_path, args, message):
    r = run(
        "policy_corners.py", "--family", "stalled_car", "--seeds", "1", *args, "--out", str(tmp_path / "c.md")
    )
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "c.md").exists()


def test_policy_corners_grid_by_hand():
    """Two probed parameters of four: 9 corners, each repeated for its seeds, the rest at the median."""
    sys.path.insert(0, str(BENCH))
    try:
        from policy_corners import corners
    finally:
        sys.path.remove(str(BENCH))
    pts, z = corners(4, [1, 3], 2)
    assert pts[0] == (-3.0, -3.0) and pts[4] == (0.0, 0.0) and pts[8] == (3.0, 3.0) and len(pts) == 9
    assert z.shape == (18, 4) and not z[:, [0, 2]].any()
    np.testing.assert_array_equal(z[2:4, [1, 3]], [[-3.0, 0.0], [-3.0, 0.0]])  # corner 1, both seeds
    np.testing.assert_array_equal(z[16:, [1, 3]], [[3.0, 3.0], [3.0, 3.0]])


def test_proposal_reuse_of_the_nominal_is_plain_monte_carlo(tmp_path):
    """The nominal law as a reused proposal is plain Monte Carlo: acceleration 1, exactly; its first use
    adds the simulations behind it; a proposal of another family is refused in one line."""
    from drivegpt.corner.mixture import nominal
    from drivegpt.corner.proposal_file import save_proposal

    names = ["ego_speed", "lead_speed", "distance", "traffic_spacing"]
    z = np.random.default_rng(0).standard_normal((20, 4)) - 3.0
    np.savez(tmp_path / "slower_lead-failures-7.npz", z=z, seeds=np.arange(20), sims=10_000, seconds=1.0)
    save_proposal(tmp_path / "p.json", nominal(4), "slower_lead", names, fit_sims=1000)
    out = tmp_path / "new" / "reuse.json"  # its folder is made
    r = run("proposal_reuse.py", "--family", "slower_lead", "--failures", str(tmp_path),
            "--proposal", str(tmp_path / "p.json"), "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["relvar"] == pytest.approx(10_000 / 20 - 1) and row["acceleration_reused"] == pytest.approx(
        1.0
    )
    assert row["acceleration_first_use"] == pytest.approx(row["final_sims"] / (1000 + row["final_sims"]))
    r = run("proposal_reuse.py", "--family", "slower_lead", "--failures", str(tmp_path),
            "--proposal", str(tmp_path / "p.json"), "--pool", "2")  # fmt: skip
    assert r.returncode == 2 and "--pool must be >= 1 and divide the 1" in r.stderr.strip().splitlines()[-1]
    # two copies of the nominal pooled: the nominal again, its cost counted twice
    r = run("proposal_reuse.py", "--family", "slower_lead", "--failures", str(tmp_path), "--pool", "2",
            "--proposal", str(tmp_path / "p.json"), str(tmp_path / "p.json"), "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["acceleration_reused"] == pytest.approx(1.0) and row["fit_sims"] == 2000
    r = run("proposal_reuse.py", "--family", "slower_lead", "--failures", str(tmp_path), "--defensive", "0")
    assert r.returncode == 2 and "every --defensive weight in (0, 1)" in r.stderr.strip().splitlines()[-1]
    r = run("proposal_reuse.py", "--family", "slower_lead", "--failures", str(tmp_path),
            "--halfspace-margins", "-1")  # fmt: skip
    assert r.returncode == 2 and "every --halfspace-margins value >= 0" in r.stderr.strip().splitlines()[-1]
    save_proposal(tmp_path / "q.json", nominal(4), "cut_in", names)
    r = run(
        "proposal_reuse.py",
        "--family",
        "slower_lead",
        "--failures",
        str(tmp_path),
        "--proposal",
        str(tmp_path / "q.json"),
    )
    assert (
        r.returncode != 0
        and "fitted on family 'cut_in', not 'slower_lead'" in r.stderr.strip().splitlines()[-1]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--proposal", "none.json"], "none.json: no such proposal file"),
        (
            ["--families", "slower_lead", "cut_in", "--proposal", "none.json"],
            "a --proposal file belongs to one family",
        ),
        (["--parts", "mc", "is", "--mc-failures", "."], "--mc-failures is the Monte Carlo reference"),
        (["--refit-floor", "-1"], "importance-sampling options: bad value for 'refit_floor'"),
        (["--halfspace-share", "1.5"], "importance-sampling options: bad value for 'halfspace_share'"),
        (["--is-defensive", "1"], "importance-sampling options: bad value for 'defensive'"),
        (["--pool"], "--pool pools the --proposal files: give them"),
    ],
)
def test_estimate_batched_refuses_bad_options_before_any_simulation(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = run("estimate_batched.py", "--families", "slower_lead", "--parts", "is", *args, "--out", "out")
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "out" / "slower_lead.json").exists()


def test_failure_randomness_refuses_bad_options_and_a_missing_stream(tmp_path):
    r = run("failure_randomness.py", "--family", "stalled_car", "--failures", str(tmp_path), "--resims", "0")
    assert r.returncode == 2 and "--resims and --batch must be >= 1" in r.stderr.strip().splitlines()[-1]
    r = run("failure_randomness.py", "--family", "stalled_car", "--failures", str(tmp_path))
    assert r.returncode == 1 and "no stalled_car-failures-*.npz" in r.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


def test_failure_randomness_splits_by_the_bounds_h(tmp_path):
    """With a bound file of the same failures, the rows split the rarely repeated (h < 0.1) from the
    rest, each group's figure the mean of its own failures' redraws; a bound of other failures is
    refused."""
    stored = np.load(BENCH / "results" / "is_second_moment" / "stalled_car-failures-7.npz")
    z, seeds = stored["z"][:4], stored["seeds"][:4]
    np.savez(tmp_path / "stalled_car-failures-7.npz", z=z, seeds=seeds, sims=1000)
    h = np.array([30.0, 40, 0, 40]) / 40  # one rarely repeated failure, the third
    np.savez(tmp_path / "stalled_car-bound.npz", fails=h * 40, n=np.full(4, 40.0))
    r = run("failure_randomness.py", "--family", "stalled_car", "--failures", str(tmp_path), "--resims", "1")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "stalled_car-randomness.md").read_text()
    assert "Same point and seed: 1.000 fail again" in text  # stored failures, replayed exactly
    counts = np.load(tmp_path / "stalled_car-randomness.npz")
    assert int(counts["resims"]) == 1
    for kind, who in (("noise", "the human's noise"), ("traffic", "the traffic")):
        share = counts[kind]  # (4,) per failure, in the streams' order
        assert share.shape == (4,) and set(share) <= {0.0, 1.0}
        assert f"| {who} | {share.mean():.3f} | " in text
        assert f"| {who}; the 1 failure with h < 0.1 | {share[2]:.3f} | " in text
        assert f"| {who}; the 3 failures with h ≥ 0.1 | {share[[0, 1, 3]].mean():.3f} | " in text
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / "stalled_car-failures-7.npz", z=z[:1], seeds=seeds[:1], sims=1000)
    np.savez(other / "stalled_car-bound.npz", fails=h * 40, n=np.full(4, 40.0))  # four, not one
    r = run("failure_randomness.py", "--family", "stalled_car", "--failures", str(other))
    assert r.returncode == 1 and "4 failures, the streams 1: run its bound again" in r.stderr
    assert not list(other.glob("*randomness*"))  # refused before simulating


def test_naturalistic_rate_refuses_no_episodes(tmp_path):
    r = run("naturalistic_rate.py", "--policies", "human", "--episodes", "0", "--out", str(tmp_path / "n"))
    assert r.returncode == 2 and "--episodes must be >= 1, got 0" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "n").exists()


def test_every_bench_script_imports_names_the_package_has():
    """A name moved between modules breaks no bench script: each ``from drivegpt... import NAME`` of
    ``bench/*.py`` resolves (checked without running the scripts)."""
    import ast
    import importlib

    missing = []
    for script in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                "drivegpt",
                "drivegpt_envs",
            ):
                module = importlib.import_module(node.module)
                missing += [
                    f"{script.name}: {node.module}.{a.name}"
                    for a in node.names
                    if not hasattr(module, a.name)
                ]
    assert not missing, missing


def test_episode_length_refuses_a_missing_stream_and_bad_counts(tmp_path):
    r = run("episode_length.py", "--failures", str(tmp_path))
    assert r.returncode == 1 and "stalled_car-failures-7.npz: run bench/is_second_moment.py" in r.stderr
    r = run("episode_length.py", "--family", "slower_lead", "--failures", str(tmp_path))
    assert r.returncode == 2 and "slower_lead: its truths run the whole 20 s episode" in r.stderr
    stream = tmp_path / "stalled_car-failures-7.npz"
    np.savez(stream, z=np.zeros((0, 11)), seeds=np.zeros(0, np.int64), sims=100)
    r = run("episode_length.py", "--failures", str(tmp_path), "--sims", "101")
    assert r.returncode == 2 and "--sims in [1, 100]" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "stalled_car-episode-length-7.md").exists()


def test_is_second_moment_fits_without_rarely_repeated_failures(tmp_path):
    """``--parts fits`` on failures the seed always repeats (h = 1): the mixtures' rows, and the
    two-group row says there is no group to fit rather than failing on an empty one."""
    rng = np.random.default_rng(0)
    d = 5  # slower_lead's dimensions without the human's traits
    z = rng.normal(2.0, 0.3, size=(40, d))
    np.savez(tmp_path / "slower_lead-failures-7.npz", z=z, seeds=np.arange(40), sims=100_000, seconds=1.0)
    np.savez(tmp_path / "slower_lead-bound.npz", fails=np.full(40, 8.0), n=np.full(40, 8.0))
    r = run("is_second_moment.py", "--family", "slower_lead", "--no-human-traits", "--parts", "fits",
            "--out", str(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| p ")]
    assert len(rows) == 4  # targets p h and p √h, floors 1 and 0
    assert "| two Gaussians, h < 0.1 apart | - | 0 rarely repeated failures in a half: none |" in r.stdout


def test_learned_proposal_refuses_bad_options_and_missing_streams(tmp_path):
    for args, message in (
        (["--delta", "0"], "--delta must lie in (0, 1]"),
        (["--rounds", "0"], "--rounds must be >= 1"),
        (["--mc-train", "7", "--mc-train-draws", "0"], "--mc-train-draws needs --mc-train and must be >= 1"),
        (["--mc-train-draws", "100"], "--mc-train-draws needs --mc-train"),
        (["--check-sims", "1"], "--check-sims must be >= 2"),
        (["--rel-halfwidth", "0"], "--rel-halfwidth must be > 0"),
    ):
        r = run("learned_proposal.py", *args, "--out", str(tmp_path))
        assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr
    r = run("learned_proposal.py", "--mc-train", "7", "--out", str(tmp_path))
    assert r.returncode == 1 and "--mc-train [7]: " in r.stderr and "has streams []" in r.stderr, r.stderr
    r = run("learned_proposal.py", "--out", str(tmp_path))  # no Monte Carlo failures to measure on
    assert r.returncode == 1 and "no stalled_car-failures-*.npz" in r.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


def test_learned_proposal_density_sampler_and_weights_by_hand():
    """q = p (δ + (1 - δ) √ĥ / Z) with ĥ = σ(4 z0): Z by quadrature, the sampler's share of z0 > 0
    as q puts there, and the weights p / q average to 1 and recover a nominal tail, P(z0 > 1)."""
    sys.path.insert(0, str(BENCH))
    try:
        from learned_proposal import Learned
    finally:
        sys.path.remove(str(BENCH))

    class Logit(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, d) -> (n, 1)
            return 4 * x[:, :1]

    x = np.linspace(-9, 9, 200_001)
    phi = np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi) * (x[1] - x[0])  # the nominal's mass per cell
    g = (1 / (1 + np.exp(-4 * x))) ** 0.5
    delta, Z = 0.1, float((phi * g).sum())
    q = Learned([Logit()], 3, delta, 10**6)
    assert abs(q.Z - Z) < 3e-3 * Z
    z = q.sample(np.random.default_rng(0), 200_000)
    assert z.shape == (200_000, 3)
    positive = delta * 0.5 + (1 - delta) * float((phi * g)[x > 0].sum()) / Z  # q's mass at z0 > 0
    assert abs((z[:, 0] > 0).mean() - positive) < 4 * np.sqrt(positive * (1 - positive) / len(z))
    w = q.ratio(z)
    assert abs(w.mean() - 1) < 0.01 and abs(np.std(z[:, 1:]) - 1) < 0.01  # the other axes nominal
    tail = float(phi[x > 1].sum())  # P(z0 > 1) under the nominal, 0.1587
    assert abs((w * (z[:, 0] > 1)).mean() - tail) < 0.015 * tail


def test_learned_proposal_trains_on_a_regenerated_stream(tmp_path):
    """``--mc-train``: a stream's draws regenerated from its seed, labelled by the stored failures,
    measured on the other stream; stored failures that are not the stream's draws are refused."""
    dim = 11  # stalled_car with the human's traits
    for stream in (7, 8):
        z = np.random.default_rng([stream, dim]).standard_normal((3000, dim))
        failed = z[:, 0] + z[:, 1] > 3.2  # a toy failure region, about 1% of the draws
        np.savez(tmp_path / f"stalled_car-failures-{stream}.npz", z=z[failed],
                 seeds=stream * 10**7 + np.flatnonzero(failed), sims=3000, seconds=0.0)  # fmt: skip
    args = ["--mc-train", "7", *"--members 1 --steps 30 --z-draws 20000".split(), "--out", str(tmp_path)]
    r = run("learned_proposal.py", *args)
    k = int(np.load(tmp_path / "stalled_car-failures-7.npz")["z"].shape[0])
    assert r.returncode == 0 and f"trained on streams [7] (3,000 draws, {k} failures)" in r.stdout, r.stderr
    assert "measured on streams [8]" in r.stdout and "relative variance" in r.stdout
    r = run("learned_proposal.py", *args, "--mc-train-draws", "1000")
    assert r.returncode == 0 and "trained on streams [7] (1,000 draws," in r.stdout, r.stderr
    r = run("learned_proposal.py", *args[:1], "8", *args[1:])  # both streams: none left to measure on
    assert r.returncode == 1 and "need them and another" in r.stderr, r.stderr
    (tmp_path / "more").mkdir()  # a stream in another folder, read with --streams
    (tmp_path / "stalled_car-failures-8.npz").rename(tmp_path / "more" / "stalled_car-failures-8.npz")
    r = run("learned_proposal.py", *args, "--streams", str(tmp_path), str(tmp_path / "more"))
    assert r.returncode == 0 and "measured on streams [8]" in r.stdout, r.stderr
    r = run("learned_proposal.py", *args, "--streams", str(tmp_path), str(tmp_path))
    assert r.returncode == 1 and "a stream in more than one folder" in r.stderr, r.stderr
    r = run("learned_proposal.py", *args)  # stream 8 is no longer in --out
    assert r.returncode == 1 and "has streams [7]; need them and another" in r.stderr, r.stderr
    bad = dict(np.load(tmp_path / "stalled_car-failures-7.npz"))
    np.savez(tmp_path / "stalled_car-failures-7.npz", **{**bad, "z": bad["z"] + 1e-6})
    r = run("learned_proposal.py", *args, "--streams", str(tmp_path), str(tmp_path / "more"))
    assert r.returncode == 1 and "the regenerated draws are not the stored failures" in r.stderr, r.stderr


def test_stalled_car_modes_physics_by_hand_and_a_run_on_regenerated_streams(tmp_path):
    """The required deceleration by hand; the traffic features from spawned episodes; the bench end to
    end on two toy streams, and its refusals."""
    sys.path.insert(0, str(BENCH))
    try:
        from stalled_car_modes import NEAREST, NEVER, physics, sample, traffic
    finally:
        sys.path.remove(str(BENCH))
    # the check runs' sampler: q = p (δ + (1 - δ) g / Z) with g = 0.9 where z0 > 0 and the seed is even,
    # else 0.1 (Z = 0.3), so q puts δ/2 + (1 - δ) 0.225 / 0.3 of its mass on z0 > 0 with an even seed
    # (0.6 at δ = 0.3), and E_q[p / q] = 1; each draw keeps its own seed
    delta, n = 0.3, 100_000

    def g_of(z, seeds):
        return np.where((z[:, 0] > 0) & (seeds % 2 == 0), 0.9, 0.1)

    z, seeds, g = sample(np.random.default_rng(0), n, 3, g_of, delta, 5, 10**6)
    assert z.shape == (n, 3) and len(np.unique(seeds)) == n and seeds.min() >= 5 and seeds.max() < 5 + 10**6
    assert np.array_equal(g, g_of(z, seeds))
    hit = (z[:, 0] > 0) & (seeds % 2 == 0)
    assert abs(hit.mean() - 0.6) < 4 * np.sqrt(0.6 * 0.4 / n)
    assert abs(np.mean(1 / (delta + (1 - delta) * g / 0.3)) - 1) < 0.01
    with pytest.raises(SystemExit, match="more than 100,000 candidates"):
        sample(np.random.default_rng(0), 10**5, 3, lambda z, s: np.full(len(z), 0.01), 0.0, 5, 10**5)
    names = ["ego_speed", "lead_gap", "stall_distance", "reveal_distance", "human.desired_speed",
             "human.time_headway", "human.min_gap", "human.reaction_delay"]  # fmt: skip
    row = np.array([[25.0, 30.0, 150.0, 30.0, 20.0, 1.5, 3.0, 0.5]])
    a, log_room, swerve = physics(row, names)[0]
    # v = min(25, 20) = 20; room = 30 + 3 + 1.5 * 20 - 20 * 0.5 = 53 m; a = 20² / (2 * 53)
    assert a == pytest.approx(400 / 106) and log_room == pytest.approx(np.log(53.0))
    assert swerve == pytest.approx((150 - 30 - 30) / 25)
    params = np.array([[20.0, 20.0, 120.0, 20.0], [30.0, 40.0, 250.0, 80.0]])
    t = traffic(params, np.array([1, 2]))
    assert t.shape == (2, NEAREST + 1) and np.all((t > 0) & (t <= NEVER))
    for i, seed in enumerate((1, 2)):  # the family's law by hand: right-lane cars from 60 m behind the
        # ego, 45 m apart × U(0.7, 1.3) (the first within 45 m), at ego_speed - 3 ± 1 m/s, up to 100 m
        # past the stalled car (stall_distance ahead of the ego); features: when each reaches it
        ego_speed, stall = params[i, 0], params[i, 2]
        u = torch.rand(14, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
        step = 45 * (0.7 + 0.6 * u[:, 0])
        step[0] = 45 * u[0, 0]
        x = -60 + np.cumsum(step)  # [m] from the ego
        v = ego_speed - 3 + (2 * u[:, 1] - 1)  # [m/s]
        arrive = ((stall - x) / v)[x < stall + 100]  # [s]
        behind = np.sort(arrive[arrive > 0])[:NEAREST]
        assert np.allclose(t[i, : len(behind)], behind) and np.all(t[i, len(behind) : NEAREST] == NEVER)
        assert t[i, NEAREST] == pytest.approx(min(-arrive[arrive <= 0].max(initial=-NEVER), NEVER))
    dim = 11
    for stream in (7, 8):
        z = np.random.default_rng([stream, dim]).standard_normal((3000, dim))
        failed = (z[:, 0] + z[:, 3] > 3.0) | (z[:, 1] < -3.2)  # a toy failure region
        np.savez(tmp_path / f"stalled_car-failures-{stream}.npz", z=z[failed],
                 seeds=stream * 10**7 + np.flatnonzero(failed), sims=3000, seconds=0.0)  # fmt: skip
    args = ["--train", "7", "--test", "8", "--streams", str(tmp_path)]
    args += "--members 1 --steps 5 --z-draws 2000".split()
    r = run("stalled_car_modes.py", *args, "--out", str(tmp_path / "modes.md"))
    assert r.returncode == 0, r.stderr
    report = (tmp_path / "modes.md").read_text()
    assert "| parameters and traits |" in report and "| + both |" in report and "| 0.3 |" in report
    assert "Measured on stream 8's" in report and "Required deceleration a_req on the training" in report
    r = run("stalled_car_modes.py", *args, "--inputs", "+ both", "--check-runs", "2", "--check-sims", "20")
    assert r.returncode == 0 and "| parameters and traits |" not in r.stdout, r.stderr
    assert "| + both |" in r.stdout and "2 estimates of 20 simulations each" in r.stdout
    assert "box share" not in r.stdout  # the box mixes with the parameters-only proposal, not measured
    r = run("stalled_car_modes.py", *args, "--inputs", "traffic")
    assert r.returncode == 2 and "invalid choice: 'traffic'" in r.stderr
    r = run("stalled_car_modes.py", "--train", "7", "--test", "7", "--streams", str(tmp_path))
    assert r.returncode == 2 and "also a --train stream" in r.stderr
    r = run("stalled_car_modes.py", "--train", "7", "--test", "9", "--streams", str(tmp_path))
    assert r.returncode == 2 and "streams [9]" in r.stderr


def test_first_use_learned_closeness_by_hand_and_its_refusals(tmp_path):
    """The closeness's time to collision by hand, ahead and behind; stored Monte Carlo failures
    re-simulate to closeness 1 and nominal draws below it; a run too short to see a failure says so;
    bad options fail in one line."""
    sys.path.insert(0, str(BENCH))
    try:
        from first_use_learned import MC, any_ttc, simulate
    finally:
        sys.path.remove(str(BENCH))
    from drivegpt.corner.naturalistic import WithHumanTraits, family_distribution, load_naturalistic
    from drivegpt.sim.batched.config import LENGTH
    from drivegpt.sim.batched.families import family_config
    from drivegpt.sim.batched.spawn import empty_state

    s = empty_state(family_config("stalled_car"), 1)
    # ego at 20 m/s in the lane y = 4 m; a car 30 m ahead at 10 m/s (the ego closes in: (30 - L) / 10 s);
    # one 20 m behind at 30 m/s (it closes in: (20 - L) / 10 s, the smaller); one beside, behind and
    # faster (another lane: not counted); one ahead and faster (it draws away: not counted)
    for slot, (x, y, v) in enumerate([(0, 4, 20), (30, 4, 10), (-20, 4.5, 30), (-10, 8, 40), (10, 4, 25)]):
        s.present[0, slot], s.x[0, slot], s.y[0, slot], s.speed[0, slot] = True, x, y, v
    assert float(any_ttc(s)[0]) == pytest.approx((20 - LENGTH) / 10)
    s.present[0, 2] = False
    assert float(any_ttc(s)[0]) == pytest.approx((30 - LENGTH) / 10)
    s.present[0, 1] = False
    assert float(any_ttc(s)[0]) == float("inf")
    dist = WithHumanTraits(family_distribution("stalled_car", load_naturalistic(None)))
    mc = np.load(MC / "stalled_car-failures-7.npz")
    z = np.concatenate([mc["z"][:3], np.random.default_rng(0).standard_normal((5, dist.dim))])
    seeds = np.concatenate([mc["seeds"][:3], 3 * 10**9 + np.arange(5)])
    c = simulate("stalled_car", dist.to_params(z), seeds, list(dist.names))
    assert np.all(c[:3] == 1) and np.all((c[3:] > 0) & (c[3:] < 1))
    args = "--runs 1 --pilot 20 --max-rounds 1 --z-draws 500".split()
    r = run("first_use_learned.py", *args, "--out", str(tmp_path / "r.md"))
    assert r.returncode == 0, r.stderr
    assert "| 0 | 20 (1) | no failure in the rounds: no proposal |" in (tmp_path / "r.md").read_text()
    for bad, says in (("--rho 1", "--rho must lie in (0, 1)"), ("--round 0", "must be >= 1"),
                      ("--family cut_in", "invalid choice: 'cut_in'")):  # fmt: skip
        r = run("first_use_learned.py", *bad.split())
        assert r.returncode == 2 and says in r.stderr, r.stderr


def test_surrogate_proposal_spread_by_hand_and_its_refusals(tmp_path):
    """The spread of fixed-size runs as a relative variance by hand, inside its bootstrap interval;
    coverage sets flagged runs apart; pooling refuses sets that share a seed; bad options fail in one
    line."""
    sys.path.insert(0, str(BENCH))
    try:
        from surrogate_proposal import coverage, spread
    finally:
        sys.path.remove(str(BENCH))
    # estimates (0.8, 0.9, 1.1, 1.2) e-3 of 100 sims each, P = 1e-3: sample variance 1e-7 / 3, relative
    # variance (1e-7 / 3) * 100 / 1e-6 = 10 / 3; Monte Carlo's (1 - 1e-3) / 1e-3 = 999: 299.7x
    relvar, acc, lo, hi = spread(np.array([0.8e-3, 0.9e-3, 1.1e-3, 1.2e-3]), 100, 1e-3)
    assert relvar == pytest.approx(10 / 3) and acc == pytest.approx(299.7)
    assert lo <= acc <= hi and lo < hi
    assert coverage(27, 1, 30) == "27 of the 29 intervals cover it (1 flagged degenerate: no interval)"
    assert coverage(28, 0, 30) == "28 of the 30 intervals cover it"
    row = {"seed": 1, "p": 5e-4, "covers": True, "sims": 10}
    for first in (0, 5):  # two sets that ran the same seed
        set_ = {"set": "fixed", "first": first, "runs": 1, "fixed": 10, "rows": [row]}
        (tmp_path / f"adversarial_vehicle-fixed-{first}.json").write_text(json.dumps(set_))
    r = run("surrogate_proposal.py", "--parts", "pool", "--set", "fixed", "--out", str(tmp_path))
    assert r.returncode == 1 and "share a run's seed" in r.stderr, r.stderr
    for bad, says in (("--runs 1", "need --runs >= 2"), ("--first -1", "--first >= 0"),
                      ("--parts search", "invalid choice: 'search'"), ("--family cut_in", "invalid choice"),
                      ("--sims-per-check 0", "--sims-per-check >= 1")):  # fmt: skip
        r = run("surrogate_proposal.py", *bad.split())
        assert r.returncode == 2 and says in r.stderr, r.stderr
    for part in ("tilt", "margin"):
        r = run("stalled_car_margin.py", "--parts", part, "--streams", str(tmp_path))
        assert r.returncode == 1 and "no stalled_car-failures-*.npz under" in r.stderr, r.stderr


def test_stalled_car_surrogate_traffic(tmp_path):
    """The proposal's terms on the stored Monte Carlo failures: a table chosen on streams 7 and 8 and
    measured on 9 and 10, then the command line's defaults and the earlier forms; missing streams fail
    in one line."""
    r = run("stalled_car_surrogate_traffic.py", "--nominal", "20000", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "stalled_car-surrogate-traffic.md").read_text()
    assert "measured on 9, 10 (held out)" in text and "| the margin alone | 1 | 0.5 | 0 | 0 |" in text
    assert "| **the defaults** | 0.5 | 0.02 | 0.8 | 0.08 | -2 | 0.2 |" in text
    assert text.count("×** |") == 8  # the five best settings, the defaults, the two earlier forms
    r = run("stalled_car_surrogate_traffic.py", "--streams", str(tmp_path))
    assert r.returncode == 2 and "no stalled_car-failures-S.npz for streams [7, 8, 9, 10]" in r.stderr


def test_stalled_car_lane_changes(tmp_path):
    """The 43 lane-change failures replayed and traced, one row each, with the share of window draws
    that change lanes; missing streams fail in one line."""
    r = run("stalled_car_lane_changes.py", "--others", "40", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "stalled_car-lane-changes.md").read_text()
    assert text.count(" car |") == 43 and "none in the trace" not in text  # each collision found
    assert "it collides with the rearmost car in" in text and "Of 40 draws of streams 7 and 8" in text
    r = run("stalled_car_lane_changes.py", "--streams", str(tmp_path))
    assert r.returncode == 2 and "need stalled_car-failures-S.npz for streams 7, 8, 9, 10" in r.stderr
