"""Why a DriveGPT fails at a junction: its decisions against the alert human's, step by step.

The policy drives ``--episodes`` held-out episodes (seeds from 1,000,000, the family's parameters
drawn as the DAgger labelling draws them) of a junction family on highway-env, alone. At every
step the alert human (the safety driver's model: no reaction delay, no noise) decides on the same
state, as DAgger labels it. Per policy and ``--caution`` level it reports: the failures; the mean
speed; how often the greedy acceleration is the human's; how often the human's label switches
between braking (at most -2 m/s²) and driving on (at least +1.5 m/s²) from one step to the next;
the policy's probability of braking where the human brakes and where it drives on; and the
observation's normalisation range of ``y`` on this road (highway-env clips beyond it).

``--caution T`` decodes cautiously: where the policy's probability of braking at least 2 m/s² is
``T`` or more, it takes its most likely braking token instead of the greedy one (1 = greedy).

``--probe`` asks where the decision is lost: is it in what the policy sees, in what it computes, or
in what it outputs? On the greedy drives' steps where the human brakes or drives on, split by
episode (every fourth episode held out), it reports the area under the ROC curve (AUC) of four
scores of "the human brakes": the policy's own probability of braking; a logistic regression on the
policy's last hidden state; a small MLP on the observation; and the same MLP on the observation with
the ego's true position and speed added (what the observation's normalisation range clips away:
highway-env's ±4 m lateral range hid the intersection's approach until the family set ±50 m). 0.5 is
chance, 1 a perfect decision.

    python bench/junction_decisions.py --policy drivegpt-rlhf --family intersection --episodes 100 \
        --caution 1 0.3 0.25 --out bench/results/dagger_junctions/decisions.md

Writes ``--out`` (Markdown) and prints it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from drivegpt.core.atomic import write_text
from drivegpt.core.errors import UserError
from drivegpt.core.metrics import wilson_interval
from drivegpt.model.policy import DriveGPTPolicy
from drivegpt.policies.registry import DriveJob, load_policy, policy_action_kind, policy_and_env
from drivegpt.rlhf.dagger import family_params
from drivegpt.sim.rollout import parallel_map
from drivegpt.takeover.monitor import safety_driver
from drivegpt_envs.actions import N_TOKENS, decode_accel_lane
from drivegpt_envs.families import FAMILIES

BRAKE, GO = -2.0, 1.5  # [m/s²] a label at most BRAKE brakes, at least GO drives on
_ACC = decode_accel_lane(np.arange(N_TOKENS))[0]  # (42,) token -> [m/s²]


class Job(NamedTuple):
    spec: str
    family: str
    seed: int
    caution: float
    probe: bool = False


def drive(job: Job) -> dict[str, Any]:
    """One episode: the policy drives (decoded with ``job.caution``), the alert human labels."""
    policy, env = policy_and_env(DriveJob(job.spec, FAMILIES[job.family], "accel", job.seed))
    obs, _ = env.reset(seed=job.seed, options={"params": family_params(job.family, job.seed)})
    policy.reset(seed=job.seed, env=env)
    ego, scripted = env.unwrapped.road.vehicles[:2]  # the ego (env.unwrapped.vehicle), then the family's
    # scripted car
    human = safety_driver()
    human.reset(seed=job.seed, env=env)
    braking = torch.from_numpy(_ACC <= BRAKE)  # (42,)
    p_brake, label, chosen, speeds, off_road = [], [], [], [], False
    seen, hidden = [], []  # with job.probe: (obs, ego position, speed) and the hidden state per step
    while True:
        human.act(obs)
        with torch.inference_mode():
            policy.push(np.asarray(obs)[None])
            h = policy.last_hidden()  # (1, C)
            p = policy.model.head(h)[0].softmax(-1)  # (42,)
            pb = float(p[braking].sum())
            token = int(p.argmax())
            if pb >= job.caution:
                token = int(torch.where(braking, p, 0.0).argmax())
            policy.tokens[:, -1] = token
        if job.probe:
            seen.append(np.concatenate([np.asarray(obs, np.float32).ravel(), ego.position, [ego.speed]]))
            hidden.append(h[0].numpy().copy())
        p_brake.append(pb)
        label.append(_ACC[int(human.decision)])
        chosen.append(_ACC[token])
        obs, _, terminated, truncated, _ = env.step(policy.tokenizer.decode(np.array([token]))[0])
        speeds.append(float(ego.speed))
        off_road |= not ego.on_road  # failed: a collision or leaving the road, ever
        if terminated or truncated:
            break
    y_range = env.unwrapped.observation_type.features_range["y"]
    return {
        "failed": bool(ego.crashed or off_road),
        "cause": cause(ego, scripted, env.unwrapped.road.vehicles, off_road),
        "speed": float(np.mean(speeds)),
        "p_brake": np.asarray(p_brake),
        "label": np.asarray(label),
        "chosen": np.asarray(chosen),
        "y_range": float(y_range[1]),
        "seen": np.asarray(seen, np.float32),  # (T, V*F + 3) with job.probe, else empty
        "hidden": np.asarray(hidden, np.float32),  # (T, C)
    }


def cause(ego: Any, scripted: Any, vehicles: list[Any], off_road: bool) -> str:
    """How an episode failed: ``scripted`` (hit the family's scripted car), ``traffic`` (another car),
    ``off_road``; empty if it did not. The car hit is the crashed one nearest to the ego."""
    if not ego.crashed:
        return "off_road" if off_road else ""
    hit = [v for v in vehicles if v is not ego and v.crashed]
    if not hit:
        return "off_road"  # crashed into a road object
    nearest = min(hit, key=lambda v: float(np.linalg.norm(v.position - ego.position)))
    return "scripted" if nearest is scripted else "traffic"


def summary(spec: str, caution: float, eps: list[dict[str, Any]]) -> dict[str, Any]:
    label = np.concatenate([e["label"] for e in eps])
    chosen = np.concatenate([e["chosen"] for e in eps])
    p_brake = np.concatenate([e["p_brake"] for e in eps])
    flips = [
        np.mean(
            (e["label"][1:] <= BRAKE) & (e["label"][:-1] >= GO)
            | (e["label"][1:] >= GO) & (e["label"][:-1] <= BRAKE)
        )
        for e in eps
        if len(e["label"]) > 1
    ]
    failures = sum(e["failed"] for e in eps)
    lo, hi = wilson_interval(failures, len(eps))
    return {
        "policy": spec,
        "caution": caution,
        "episodes": len(eps),
        "failures": failures,
        "rate": f"{failures / len(eps):.2f} [{lo:.2f}, {hi:.2f}]",
        "causes": " / ".join(
            str(sum(e["cause"] == c for e in eps)) for c in ("scripted", "traffic", "off_road")
        ),
        "speed": float(np.mean([e["speed"] for e in eps])),
        "agreement": float(np.mean(chosen == label)),
        "label_brakes": float(np.mean(label <= BRAKE)),
        "label_flips": float(np.mean(flips)),
        "p_brake_where_brake": float(p_brake[label <= BRAKE].mean()),
        "p_brake_where_go": float(p_brake[label >= GO].mean()),
        "y_range": eps[0]["y_range"],
    }


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(a positive's score > a negative's), ties counted half."""
    pos, neg = score[positive], score[~positive]
    order = np.sort(neg)
    below = np.searchsorted(order, pos, "left")
    tied = np.searchsorted(order, pos, "right") - below
    return float((below + tied / 2).sum() / (len(pos) * len(neg)))


def fit_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, hidden: int, seed: int = 0) -> np.ndarray:
    """Scores of every row of ``x`` (n, d) from a classifier of ``y`` (n,) fitted on ``train`` rows:
    logistic regression (``hidden`` 0) or an MLP with two ``hidden``-wide layers; inputs standardised
    on the training rows, Adam, 4,000 steps of 256."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt = torch.from_numpy(x)
    xt = (xt - xt[train].mean(0)) / (xt[train].std(0) + 1e-3)
    d = x.shape[1]
    layers = [torch.nn.Linear(d, 1)] if hidden == 0 else [
        torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    ]  # fmt: skip
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    xs, ys = xt[torch.from_numpy(train)], torch.from_numpy(y[train].astype(np.float32))
    for _ in range(4000):
        i = torch.randint(len(xs), (256,), generator=gen)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xs[i])[:, 0], ys[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return net(xt)[:, 0].numpy()


def probe(eps: list[dict[str, Any]]) -> dict[str, float]:
    """AUCs of "the human brakes" on the held-out episodes' decisive steps (see the module doc)."""
    keep = [(e["label"] <= BRAKE) | (e["label"] >= GO) for e in eps]

    def decisive(key: str) -> np.ndarray:  # every episode's decisive steps of ``key``, concatenated
        return np.concatenate([e[key][k] for e, k in zip(eps, keep, strict=True)])

    y, seen, hidden, p_brake = (
        decisive("label") <= BRAKE,
        decisive("seen"),
        decisive("hidden"),
        decisive("p_brake"),
    )
    test = np.concatenate([np.full(k.sum(), i % 4 == 0) for i, k in enumerate(keep)])
    if min(y[test].sum(), (~y[test]).sum(), y[~test].sum(), (~y[~test]).sum()) == 0:
        raise SystemExit("--probe: the human never braked or never drove on in the training or held-out "
                         "episodes; raise --episodes")  # fmt: skip
    n_obs = seen.shape[1] - 3  # the observation's columns; then the ego's position (x, y) and speed
    return {
        "decisive_steps": int(len(y)),
        "held_out_steps": int(test.sum()),
        "auc_policy": auc(p_brake[test], y[test]),
        "auc_hidden_linear": auc(fit_score(hidden, y, ~test, 0)[test], y[test]),
        "auc_obs_mlp": auc(fit_score(seen[:, :n_obs], y, ~test, 128)[test], y[test]),
        "auc_obs_position_mlp": auc(fit_score(seen, y, ~test, 128)[test], y[test]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, help="policy spec (repeatable)")
    ap.add_argument("--family", default="intersection", choices=["intersection", "roundabout"])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--caution", type=float, nargs="+", default=[1.0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--probe", action="store_true", help="where the decision is lost (module doc)")
    args = ap.parse_args(argv)
    if args.episodes < 1 or args.workers < 1 or not all(0 < c <= 1 for c in args.caution):
        ap.error("--episodes and --workers must be >= 1 and every --caution level in (0, 1]")
    if args.probe and args.episodes < 8:
        ap.error("--probe needs --episodes >= 8 (every fourth episode is held out)")
    for spec in args.policy:  # the decisions are read from a DriveGPT's token distribution
        try:
            policy = load_policy(spec)
        except UserError as err:
            ap.error(str(err))
        if not isinstance(policy, DriveGPTPolicy) or policy_action_kind(spec) != "accel":
            ap.error(
                f"--policy {spec}: not a DriveGPT with accel tokens (drivegpt, drivegpt-rlhf, drivegpt:RUN)"
            )
    t0, load0 = time.time(), os.getloadavg()
    seeds = range(1_000_000, 1_000_000 + args.episodes)
    rows, probes = [], []
    for spec in args.policy:
        for caution in args.caution:
            probing = args.probe and caution == 1.0
            jobs = [Job(spec, args.family, s, caution, probing) for s in seeds]
            eps = parallel_map(drive, jobs, args.workers, "local", f"{spec} caution {caution}", True)
            rows.append(summary(spec, caution, eps))
            if probing:
                probes.append({"policy": spec, **probe(eps)})
        if args.probe and 1.0 not in args.caution:  # the probe reads the greedy drives
            eps = parallel_map(drive, [Job(spec, args.family, s, 1.0, True) for s in seeds], args.workers,
                               "local", f"{spec} probe", True)  # fmt: skip
            probes.append({"policy": spec, **probe(eps)})
    head = (
        "| policy | caution | failures [Wilson 95%] | with the scripted car / other traffic / off the road "
        "| mean speed [m/s] | chosen = human's acceleration | "
        "human brakes (≤ -2 m/s²) | human's label flips brake ↔ go per step | P(brake) where the human "
        "brakes | P(brake) where it drives on (≥ +1.5) |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| `{r['policy']}` | {r['caution']:g} | {r['failures']}/{r['episodes']}: {r['rate']} "
        f"| {r['causes']} | {r['speed']:.2f} | {r['agreement']:.3f} | {r['label_brakes']:.3f} | "
        f"{r['label_flips']:.3f} | "
        f"{r['p_brake_where_brake']:.2f} | {r['p_brake_where_go']:.2f} |\n"
        for r in rows
    )
    if probes:
        body += (
            '\nWhere the decision is lost (`--probe`): AUC of "the human brakes" on the greedy drives\' '
            "steps where it brakes or drives on, every fourth episode held out (the scores fitted on the "
            "others):\n\n| policy | decisive steps (held out) | the policy's P(brake) | logistic "
            "regression on its hidden state | MLP on the observation | MLP on the observation + the ego's "
            "true position and speed |\n|---|---|---|---|---|---|\n"
        )
        body += "".join(
            f"| `{p['policy']}` | {p['decisive_steps']:,} ({p['held_out_steps']:,}) | {p['auc_policy']:.3f} "
            f"| {p['auc_hidden_linear']:.3f} | {p['auc_obs_mlp']:.3f} | {p['auc_obs_position_mlp']:.3f} |\n"
            for p in probes
        )
    text = (
        f"`{args.family}`, {args.episodes} held-out episodes a row (seeds from 1,000,000), the policy "
        f"alone on highway-env, the alert human labelling every step; the observation's `y` is "
        f"normalised over "
        f"±{rows[0]['y_range']:g} m on this road and clipped beyond.\n\n{head}{body}\n"
        f"`python bench/junction_decisions.py {' '.join(sys.argv[1:] if argv is None else argv)}`: "
        f"{time.time() - t0:.0f} s, load average {load0[0]:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end.\n"
    )
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
