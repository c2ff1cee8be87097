"""HG-DAgger and DAgger: the labels each collects, their aggregation, and fine-tuning on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from drivegpt.core.config import ConfigError, config_from_dict
from drivegpt.core.errors import UserError
from drivegpt.core.resources import CHECKPOINTS
from drivegpt.data.tokenizer import tokenizer_from_json
from drivegpt.data.windows import StepTable
from drivegpt.model.checkpoint import load_policy_dir
from drivegpt.rlhf.dagger import (
    PARAMS_STREAM,
    DaggerConfig,
    Labels,
    concat,
    family_labels,
    finetune,
    load_labels,
    save_labels,
    takeover_labels,
    visited_labels,
)
from drivegpt.rlhf.dagger_batched import (
    family_labels_batched,
    takeover_labels_batched,
    visited_labels_batched,
)
from drivegpt.rlhf.flywheel_config import FlywheelConfig, flywheel_simulator
from drivegpt.takeover.clips import load_clips

SAMPLE = Path(__file__).resolve().parents[1] / "takeover_data" / "sample"
META_POLICY = CHECKPOINTS / "drivegpt-meta-small"


def test_hg_dagger_labels_are_exactly_the_human_driven_steps_of_each_clip():
    clips = load_clips(SAMPLE)
    labels = takeover_labels(SAMPLE)
    assert labels.n_labels == sum(len(c.chosen) for c in clips)
    assert len(labels.obs) == sum(len(c.context_actions) + len(c.chosen) for c in clips)
    first = clips[0]
    n_ctx, n_h = len(first.context_actions), len(first.chosen)
    assert not labels.labelled[:n_ctx].any() and labels.labelled[n_ctx : n_ctx + n_h].all()
    np.testing.assert_array_equal(labels.labels[n_ctx : n_ctx + n_h], np.asarray(first.chosen))
    np.testing.assert_array_equal(labels.obs[n_ctx : n_ctx + n_h], np.asarray(first.obs, np.float32))
    # one episode per clip: the second clip's steps start where the first one ends
    assert labels.start[n_ctx + n_h] == n_ctx + n_h and (labels.start[: n_ctx + n_h] == 0).all()


def test_dagger_labels_every_visited_step_deterministically():
    args = ("constant:IDLE", "drivegpt/Highway-v0", "meta", 1, 1_000_000)
    a = visited_labels(*args, workers=1, progress=False)
    b = visited_labels(*args, workers=1, progress=False)
    assert a.labelled.all() and len(a.obs) > 0
    assert (a.actions == 1).all()  # the policy drove: IDLE at every step
    assert set(a.labels.tolist()) <= {0, 1, 2, 3, 4} and (a.labels != 1).any()  # the human would not idle
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_dagger_labels_a_family_without_a_batched_port_on_highway_env_with_drawn_parameters():
    from drivegpt.sim.rollout import make_env
    from drivegpt_envs.actions import decode_accel_lane
    from drivegpt_envs.families import FAMILIES, family_class

    labels = family_labels("constant:0,keep", "intersection", "accel", 1, 7, workers=1, progress=False)
    params = family_class("intersection").sample_params(np.random.default_rng([7, PARAMS_STREAM]))
    obs, info = make_env(FAMILIES["intersection"], "accel").reset(seed=7, options={"params": params})
    np.testing.assert_array_equal(labels.obs[0], obs.astype(np.float32))  # the drawn scene, seed 7
    assert info["params"] == params and labels.labelled.all()
    assert (labels.actions == labels.actions[0]).all()  # the policy held its speed throughout
    # the junction human would not: it slows for the crossing (or the curve) at some step
    assert min(decode_accel_lane(int(a))[0] for a in labels.labels) < 0


def test_batched_dagger_labels_are_the_humans_decisions_whatever_the_batch_size():
    from drivegpt_envs.actions import decode_accel_lane

    args = ("constant:3,keep", "drivegpt/HighwayDense-v0", 3, 1_000_000)
    a = visited_labels_batched(*args, batch=3, progress=False)
    b = visited_labels_batched(*args, batch=2, progress=False)
    for x, y in zip(a, b, strict=True):  # the same episodes, whatever B
        np.testing.assert_array_equal(x, y)
    assert a.labelled.all() and a.obs.shape[1:] == (10, 7) and len(a.obs) == len(a.labels)
    assert (a.actions == a.actions[0]).all()  # the policy drove: full throttle at every step
    acc, _ = decode_accel_lane(a.labels)  # (N,) [m/s²]
    assert (acc < 0).any()  # the human, behind the wheel of a car at full throttle in dense traffic, brakes
    assert (np.diff(a.start) >= 0).all() and len(set(a.start.tolist())) == 3  # three episodes


def test_batched_hg_dagger_labels_exactly_the_safety_drivers_steps_whatever_the_batch_size():
    from drivegpt.takeover.monitor import MonitorConfig

    args = ("constant:3,keep", "drivegpt/HighwayDense-v0", 3, 1_000_000, MonitorConfig(lookahead_steps=0))
    a = takeover_labels_batched(*args, batch=3, progress=False)
    b = takeover_labels_batched(*args, batch=2, progress=False)
    for x, y in zip(a, b, strict=True):  # the same monitored episodes, whatever B
        np.testing.assert_array_equal(x, y)
    full = a.actions[~a.labelled][0]  # +3 m/s², keep the lane
    assert 0 < a.n_labels < len(a.labels)  # full throttle in dense traffic: the safety driver took over
    assert (a.actions[~a.labelled] == full).all()  # unlabelled: the policy's own (constant) token
    assert (a.labels[a.labelled] != full).any()  # labelled: the safety driver's tokens, which brake
    np.testing.assert_array_equal(a.labels, a.actions)  # the executed history carries the corrections


@pytest.mark.parametrize("family", ["stalled_car", "hard_braking_lead"])
def test_family_labels_draw_parameters_per_episode_and_hold_the_humans_braking(family):
    from drivegpt_envs.actions import decode_accel_lane

    a = family_labels_batched("constant:0,keep", family, 3, 0, batch=3, progress=False)
    b = family_labels_batched("constant:0,keep", family, 3, 0, batch=2, progress=False)
    for x, y in zip(a, b, strict=True):  # the same episodes, whatever B
        np.testing.assert_array_equal(x, y)
    acc, _ = decode_accel_lane(a.labels)  # (N,) [m/s²]
    assert (
        a.labelled.all() and (acc <= -4.5).any()
    )  # holding its speed, the ego meets a hazard: the human brakes
    assert len(set(a.start.tolist())) == 3


def test_aggregation_keeps_every_round_in_order(tmp_path):
    r1, r2 = takeover_labels(SAMPLE), takeover_labels(SAMPLE)
    save_labels(tmp_path / "r1.npz", r1)
    both = concat([load_labels(tmp_path / "r1.npz"), r2])
    assert both.n_labels == r1.n_labels + r2.n_labels
    np.testing.assert_array_equal(both.obs[: len(r1.obs)], r1.obs)
    np.testing.assert_array_equal(both.start[len(r1.obs) :], r2.start + len(r1.obs))
    with pytest.raises(ValueError, match="no labelled steps"):
        concat([])


def _label_accuracy(policy: Path, labels: Labels) -> float:
    model, meta = load_policy_dir(policy)
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    table = StepTable(norm(labels.obs), tok.encode(labels.actions), tok.encode(labels.labels), labels.start)
    w = table.windows(torch.from_numpy(np.flatnonzero(labels.labelled)), model.cfg.context)
    with torch.no_grad():
        return float((model(w.obs, w.actions)[:, -1].argmax(-1) == w.targets[:, -1]).float().mean())


@pytest.mark.parametrize("positions", ["last", "all"])
def test_finetuning_on_the_corrections_learns_them(tmp_path, positions):
    labels = takeover_labels(SAMPLE)  # the clips' context steps are unlabelled: never targets
    save_labels(tmp_path / "labels.npz", labels)
    cfg = DaggerConfig(iters=60, batch_size=32, lr=2e-3, threads=1, positions=positions)
    m = finetune(cfg, META_POLICY, [tmp_path / "labels.npz"], tmp_path / "out", progress=False)
    assert m["human_labels"] == labels.n_labels and m["label_sets"] == 1
    before = _label_accuracy(META_POLICY, labels)
    after = _label_accuracy(tmp_path / "out" / "policy", labels)
    assert after > before + 0.1, (before, after)


def test_action_dropout_changes_the_finetuning_and_is_deterministic(tmp_path):
    save_labels(tmp_path / "labels.npz", takeover_labels(SAMPLE))
    weights = {}
    for name, p in (("a", 0.9), ("b", 0.9), ("none", 0.0)):
        cfg = DaggerConfig(iters=5, batch_size=8, lr=1e-3, threads=1, action_dropout=p)
        finetune(cfg, META_POLICY, [tmp_path / "labels.npz"], tmp_path / name, progress=False)
        weights[name] = (tmp_path / name / "policy" / "model.safetensors").read_bytes()
    assert weights["a"] == weights["b"] and weights["a"] != weights["none"]
    with pytest.raises(ValueError, match="action_dropout"):
        DaggerConfig(action_dropout=1.0)


def test_all_positions_never_learn_from_an_unlabelled_step(tmp_path):
    base = takeover_labels(SAMPLE)
    assert 0 < base.n_labels < len(base.obs)
    marked = np.where(base.labelled, 4, 0)  # labelled steps say SLOWER, unlabelled ones LANE_LEFT
    save_labels(tmp_path / "labels.npz", base._replace(labels=marked.astype(base.labels.dtype)))
    cfg = DaggerConfig(iters=40, batch_size=32, lr=3e-3, threads=1, positions="all")
    finetune(cfg, META_POLICY, [tmp_path / "labels.npz"], tmp_path / "out", progress=False)
    model, meta = load_policy_dir(tmp_path / "out" / "policy")
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    table = StepTable(norm(base.obs), tok.encode(base.actions), tok.encode(marked), base.start)
    w = table.windows(torch.arange(len(base.obs)), model.cfg.context)  # every step, labelled or not
    with torch.no_grad():
        predicted = model(w.obs, w.actions)[:, -1].argmax(-1)
    assert (predicted == 4).float().mean() > 0.9 and not (predicted == 0).any()


def test_a_flywheel_method_must_be_known():
    with pytest.raises(ConfigError, match="hg-dagger"):
        config_from_dict(FlywheelConfig, {"method": "dagger-ppo"})
    assert config_from_dict(FlywheelConfig, {"method": "hg-dagger+ppo"}).method == "hg-dagger+ppo"


def test_auto_drives_the_flywheel_on_the_batched_simulator_where_it_can():
    def sim(action: str = "accel", **settings) -> str:
        return flywheel_simulator(config_from_dict(FlywheelConfig, settings), action)

    assert FlywheelConfig().sim == "auto"
    assert sim(method="dagger", ranking_steps=0) == "batched"
    assert sim(method="hg-dagger", label_envs=["drivegpt/Highway-v0"]) == "batched"
    assert sim("meta", method="dagger") == "highway-env"  # the batched simulator drives accel policies
    assert sim(method="ppo", ranking_steps=5) == "highway-env"  # clips with ranked futures
    assert sim(method="ppo", ranking_steps=0) == "batched"
    assert sim(method="dagger", env_id="drivegpt/Merge-v0") == "highway-env"  # no batched merge road
    assert sim(method="dagger", sim="highway-env") == "highway-env"  # an explicit choice


def test_a_dagger_flywheel_round_aggregates_labels_and_resumes(tmp_path):
    from drivegpt.rlhf.flywheel import run_flywheel

    cfg = config_from_dict(
        FlywheelConfig,
        {
            "method": "dagger",
            "rounds": 2,
            "env_id": "drivegpt/Highway-v0",
            "drive_episodes": 1,
            "eval_episodes": 0,
            "workers": 1,
            "ranking_steps": 0,
            "dagger": {"iters": 5, "batch_size": 8, "threads": 1},
        },
    )
    out = tmp_path / "fly"
    final = run_flywheel(cfg, META_POLICY, out, progress=False)
    n1 = load_labels(out / "round_1" / "labels" / "labels.npz").n_labels
    n2 = load_labels(out / "round_2" / "labels" / "labels.npz").n_labels
    assert final["human_labels"] == n1 + n2 > 0  # round 2 trains on round 1's labels too
    assert (out / "policy" / "policy.json").is_file()
    assert any((out / "round_2" / "dagger" / "tb").iterdir()) and any((out / "tb").iterdir())  # TensorBoard
    mtime = (out / "round_2" / "dagger" / "policy" / "model.safetensors").stat().st_mtime_ns
    assert run_flywheel(cfg, META_POLICY, out, progress=False) == final  # a re-run resumes: nothing redone
    assert (out / "round_2" / "dagger" / "policy" / "model.safetensors").stat().st_mtime_ns == mtime


def test_a_batched_dagger_round_labels_every_env_and_family_it_names(tmp_path):
    from drivegpt.rlhf.flywheel import run_flywheel

    envs = ["drivegpt/Highway-v0", "drivegpt/HighwayDense-v0"]
    settings = {"method": "dagger", "rounds": 1, "drive_episodes": 2, "eval_episodes": 0, "ranking_steps": 0}
    settings |= {
        "sim": "batched",
        "batch": 2,
        "label_envs": envs,
        "label_families": ["stalled_car", "intersection"],  # ported: batched; not ported: highway-env
        "teachers": {"stalled_car": "drivegpt-roads"},  # a policy labels this family, the human the rest
        "workers": 1,
        "dagger": {"iters": 3, "batch_size": 8, "threads": 1},
    }
    out = tmp_path / "fly"
    final = run_flywheel(
        config_from_dict(FlywheelConfig, settings), CHECKPOINTS / "drivegpt-accel-small", out, progress=False
    )
    labels = load_labels(out / "round_1" / "labels" / "labels.npz")
    each = [visited_labels_batched("drivegpt", e, 2, 0, progress=False) for e in envs]  # the same drives
    each.append(
        family_labels_batched("drivegpt", "stalled_car", 2, 0, progress=False, teacher="drivegpt-roads")
    )
    each.append(family_labels("drivegpt", "intersection", "accel", 2, 0, workers=1, progress=False))
    assert labels.n_labels == sum(x.n_labels for x in each)
    np.testing.assert_array_equal(labels.labels, np.concatenate([x.labels for x in each]))
    sources = json.loads((out / "round_1" / "labels" / "sources.json").read_text())
    assert [(s["source"], s["labeller"], s["labels"]) for s in sources] == [
        (*names, x.n_labels)
        for names, x in zip(
            [
                (envs[0], "human"),
                (envs[1], "human"),
                ("stalled_car", "drivegpt-roads"),
                ("intersection", "human"),
            ],
            each,
            strict=True,
        )
    ]
    assert final["teacher_labels"] == each[2].n_labels > 0  # the teacher's labels are not counted as human
    assert final["human_labels"] == labels.n_labels - each[2].n_labels


@pytest.mark.parametrize("sim", ["batched", "highway-env"])
def test_a_teacher_labels_what_it_would_do_after_the_student_s_history(sim):
    """The student drives (here: always brakes); the teacher's label at each step is its own greedy
    decision given the observations so far and the actions the *student* executed, exactly what the
    fine-tuning windows show the model (so the targets are consistent with the inputs)."""
    student, teacher = "constant:-3,keep", "drivegpt-roads"
    if sim == "batched":
        labels = family_labels_batched(student, "cut_in", 2, 7, progress=False, teacher=teacher)
    else:
        labels = family_labels(student, "cut_in", "accel", 1, 7, workers=1, progress=False, teacher=teacher)
    model, meta = load_policy_dir(CHECKPOINTS / "drivegpt-roads")
    tok, norm = tokenizer_from_json(meta["tokenizer"])
    table = StepTable(norm(labels.obs), tok.encode(labels.actions), tok.encode(labels.labels), labels.start)
    ends = torch.arange(len(labels.obs))
    w = table.windows(ends, model.cfg.context)
    with torch.no_grad():
        predicted = model(w.obs, w.actions)[:, -1].argmax(-1)  # (N,)
    assert len(set(labels.actions.tolist())) == 1  # the student's constant action is the history
    np.testing.assert_array_equal(predicted.numpy(), w.targets[:, -1].numpy())
    assert (labels.labels != labels.actions).any()  # the teacher would not always brake


def test_a_batched_hg_dagger_round_learns_from_its_monitored_drives(tmp_path):
    from drivegpt.rlhf.flywheel import run_flywheel
    from drivegpt.takeover.monitor import MonitorConfig

    settings = {"method": "hg-dagger", "rounds": 1, "drive_episodes": 3, "eval_episodes": 0, "sim": "batched"}
    settings |= {"batch": 3, "ranking_steps": 0, "dagger": {"iters": 3, "batch_size": 8, "threads": 1}}
    settings |= {"monitor": {"lookahead_steps": 0}}  # threshold triggers only: quick
    out = tmp_path / "fly"
    final = run_flywheel(
        config_from_dict(FlywheelConfig, settings), CHECKPOINTS / "drivegpt-accel-small", out, progress=False
    )
    labels = load_labels(out / "round_1" / "labels" / "labels.npz")
    same = takeover_labels_batched(
        "drivegpt", "drivegpt/HighwayDense-v0", 3, 0, MonitorConfig(lookahead_steps=0), progress=False
    )
    assert final["human_labels"] == labels.n_labels == same.n_labels > 0
    assert not (out / "round_1" / "clips").exists()  # monitored on the batched simulator: no clips
    assert (out / "round_1" / "dagger" / "policy" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"sim": "batched", "label_families": ["snow_storm"]},
            "unknown family 'snow_storm'; valid: stalled_car",
        ),
        ({"method": "ppo", "label_families": ["stalled_car"]}, "label_families are DAgger's labelled drives"),
        ({"method": "hg-dagger", "label_families": ["stalled_car"]}, "label_families are DAgger's"),
        (
            {"sim": "batched", "label_envs": ["drivegpt/Merge-v0"]},
            "no port of 'drivegpt/Merge-v0'; valid: drivegpt/",
        ),
        ({"sim": "carla"}, "sim"),
        ({"eval_sim": "batched", "eval_env": "drivegpt/Merge-v0"}, "eval_sim: batched has no port of"),
        ({"sim": "batched", "method": "dagger+ppo"}, "without ranking segments; set ranking_steps: 0"),
        (
            {"label_families": ["cut_in"], "teachers": {"side_swipe": "drivegpt-roads"}},
            "'side_swipe' is not a labelled road or family; valid: drivegpt/HighwayDense-v0, cut_in",
        ),
        ({"label_families": ["cut_in"], "teachers": {"cut_in": "human"}}, "not a policy .* name one of idm"),
        ({"label_families": ["cut_in"], "teachers": {"cut_in": "roads"}}, "'roads' is not a policy"),
        (
            {"method": "hg-dagger", "teachers": {"drivegpt/HighwayDense-v0": "drivegpt"}},
            "teachers label DAgger",
        ),
    ],
)
def test_a_dagger_drive_the_batched_simulator_cannot_run_fails_at_load(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config_from_dict(FlywheelConfig, {"method": "dagger", **settings}, "fly.yaml")


def test_a_teacher_of_another_action_interface_is_refused_naming_both():
    meta_teacher = f"drivegpt:{META_POLICY}"
    with pytest.raises(UserError, match=r"acts with 'meta' actions, the student drivegpt with 'accel'"):
        family_labels_batched("drivegpt", "cut_in", 1, 0, progress=False, teacher=meta_teacher)


def test_a_corrupt_labels_file_names_itself_and_the_fix(tmp_path):
    bad = tmp_path / "labels.npz"
    bad.write_bytes(b"not a numpy archive")
    with pytest.raises(ValueError, match=r"labels.npz: unreadable labels .*label the round again"):
        load_labels(bad)
