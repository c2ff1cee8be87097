"""Throughput of the batched highway simulator against highway-env, per CPU core.

Both simulators run the same scenario (traffic + an ego holding one constant action, highway-fast
settings) on one thread (``torch.set_num_threads(1)``). A policy step is ``step`` + observation +
reward + termination/truncation for the batched simulator and ``env.step`` for highway-env (its
resets are not timed; batched episodes keep running after a crash, the crashed ego braking to a stop).
Rates are policy steps per CPU-second of this process (per core) and per wall-second; the load average
is printed because the rates fall when other processes share the cores. Also printed: the state's
memory per episode and per vehicle slot, and where the time of a step goes (components, then the
top torch operators).

With DriveGPT choosing every action (``--policy drivegpt``, the default): highway-env with DriveGPT
acting at every step (one episode, batch 1) against the batched simulator with DriveGPT acting on all
B episodes at once (batched inference; its context kept per episode), observation included.

``--device cuda``: the batched simulator (and DriveGPT) on the GPU, the same code; rates are then
per wall-second (the GPU does the work, one CPU thread launches it), highway-env stays on one core.

    .venv/bin/python bench/sim_throughput.py --env drivegpt/HighwayDense-v0 --action accel
    python bench/sim_throughput.py --device cuda --batches 1024 8192 65536 262144 1048576
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import fields

import gymnasium as gym
import torch
from env_speed import highway_env_search  # bench/ is on sys.path when run as a script
from highway_env.envs.common.observation import KinematicObservation

import drivegpt_envs
from drivegpt.policies.registry import load_policy
from drivegpt.sim.batched import BatchState, make_config, observe, reset, reward, step, terminated, truncated
from drivegpt.sim.batched.collision import ego_collisions
from drivegpt.sim.batched.controller import steering_control
from drivegpt.sim.batched.idm import IdmParams, KinTable, acceleration
from drivegpt.sim.batched.kinematics import bicycle_step
from drivegpt.sim.batched.mobil import lane_change_policy
from drivegpt.sim.batched.road import neighbours
from drivegpt.takeover.batched import policy_tokens
from drivegpt_envs.actions import NEUTRAL_TOKEN

CONSTANT_ACTION = {"accel": NEUTRAL_TOKEN, "meta": 1}  # hold speed / IDLE


def sync() -> None:
    """Wait for queued GPU work (a no-op on CPU), so that a timing covers the work, not its launch."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], min_seconds: float, min_calls: int = 2) -> tuple[float, float, int]:
    """(CPU seconds per call, wall seconds per call, calls) of ``fn`` run for about ``min_seconds``."""
    fn()
    sync()
    calls, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while calls < min_calls or time.perf_counter() - wall0 < min_seconds:
        fn()
        calls += 1
        sync()
    return (time.process_time() - cpu0) / calls, (time.perf_counter() - wall0) / calls, calls


def highway_env_rate(env_id: str, kind: str, seconds: float, stock: bool = True) -> tuple[float, float]:
    """highway-env policy steps per CPU-second and per wall-second (env.step only).

    ``stock``: observe through highway-env's own (pandas) ``KinematicObservation`` and search
    neighbours with its own ``Road.neighbour_vehicles``, not the project envs' ``FastKinematics`` and
    ``FastRoad`` (the same observation and answers, faster)."""
    if stock:
        with highway_env_search():
            return _highway_env_rate(env_id, kind, seconds, stock_observation=True)
    return _highway_env_rate(env_id, kind, seconds, stock_observation=False)


def _highway_env_rate(env_id: str, kind: str, seconds: float, stock_observation: bool) -> tuple[float, float]:
    env = gym.make(env_id)
    env.unwrapped.configure(drivegpt_envs.action_config(kind))

    def reset(seed: int) -> None:
        env.reset(seed=seed)
        if stock_observation:  # reset builds the observation type anew: put the stock one back
            u = env.unwrapped
            u.observation_type = KinematicObservation(u, **u.config["observation"])

    reset(0)
    cpu = wall = 0.0
    steps, episode = 0, 0
    while wall < seconds:
        c0, w0 = time.process_time(), time.perf_counter()
        _, _, term, trunc, _ = env.step(CONSTANT_ACTION[kind])
        cpu, wall, steps = cpu + time.process_time() - c0, wall + time.perf_counter() - w0, steps + 1
        if term or trunc:
            episode += 1
            reset(episode)
    return steps / cpu, steps / wall


def policy_step(state: BatchState, action: torch.Tensor) -> BatchState:
    state = step(state, action)
    observe(state), reward(state), terminated(state), truncated(state)
    return state


def state_bytes(state: BatchState) -> int:
    tensors = [getattr(state, f.name) for f in fields(state) if f.name not in ("config", "behavior")]
    tensors += [getattr(state.behavior, f.name) for f in fields(state.behavior)]
    return sum(t.numel() * t.element_size() for t in tensors)


def highway_env_policy_rate(env_id: str, spec: str, seconds: float) -> tuple[float, float]:
    """highway-env (the project's env: ``FastKinematics``, ``FastRoad``) with ``spec`` acting at every
    step, batch 1: policy steps per CPU-second and per wall-second (``env.step`` + the decision)."""
    policy = load_policy(spec)
    env = gym.make(env_id)
    env.unwrapped.configure(drivegpt_envs.action_config(policy.action_kind))
    if hasattr(policy, "env_config"):
        env.unwrapped.configure(policy.env_config)
    obs, _ = env.reset(seed=0)
    policy.reset(0, env)
    cpu = wall = 0.0
    steps, episode = 0, 0
    while wall < seconds:
        c0, w0 = time.process_time(), time.perf_counter()
        obs, _, term, trunc, _ = env.step(policy.act(obs))
        cpu, wall, steps = cpu + time.process_time() - c0, wall + time.perf_counter() - w0, steps + 1
        if term or trunc:
            episode += 1
            obs, _ = env.reset(seed=episode)
            policy.reset(episode, env)
    return steps / cpu, steps / wall


def batched_policy_rate(
    env_id: str, spec: str, b: int, seconds: float, device: str
) -> tuple[float, float, float]:
    """The batched simulator with ``spec`` choosing the actions of all ``b`` episodes at once:
    (policy steps per CPU-second, per wall-second, ms per batched step). Observation, batched
    inference and ``step`` are all timed; episodes run on after their end (a fixed batch)."""
    policy = load_policy(spec)
    if hasattr(policy, "to"):
        policy.to(device)
    config = make_config(env_id, policy.action_kind, getattr(policy, "env_config", None))
    holder = [reset(range(b), config, device)]
    policy.reset_batch(b)

    def run() -> None:
        state = holder[0]
        holder[0] = step(state, policy_tokens(policy, observe(state)))
        terminated(holder[0]), truncated(holder[0])

    cpu, wall, _ = timed(run, seconds)
    return b / cpu, b / wall, wall * 1e3


def components(state: BatchState, seconds: float) -> dict[str, tuple[float, float]]:
    """(CPU ms, wall ms) per call of the parts of one simulation sub-step (and of the observation)."""
    cfg, dt = state.config, state.config.dt
    table = KinTable(state)
    nb = neighbours(state.x, state.y, state.present, cfg.lanes_count)
    zeros = torch.zeros_like(state.x)
    front = nb.front(torch.arange(state.x.numel(), device=state.device), state.lane.reshape(-1))
    parts = {
        "neighbour search": lambda: neighbours(state.x, state.y, state.present, cfg.lanes_count),
        "MOBIL + abort": lambda: lane_change_policy(state, table, nb, cfg),
        "IDM (current lane)": lambda: acceleration(table.all, table.at(front), IdmParams.of(state.behavior)),
        "steering control": lambda: steering_control(state.y, state.heading, state.speed, state.target_lane),
        "bicycle model": lambda: bicycle_step(state, zeros, zeros, dt),
        "collisions": lambda: ego_collisions(state, dt),
        "observation": lambda: observe(state),
    }
    return {name: tuple(t * 1e3 for t in timed(fn, seconds)[:2]) for name, fn in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="drivegpt/HighwayDense-v0")
    parser.add_argument("--action", default="accel", choices=sorted(CONSTANT_ACTION))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 1024, 4096, 8192])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per measurement")
    parser.add_argument("--profile-batch", type=int, default=1024)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the batched simulator runs")
    parser.add_argument("--policy", default="drivegpt", help="policy spec for the policy-in-the-loop part")
    parser.add_argument(
        "--policy-batches", type=int, nargs="*", default=[1024, 4096], help="B for that part (none: skip)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    per = "wall-second" if gpu else "CPU-second"  # the rate the 'x highway-env' columns use
    where = f"CUDA ({torch.cuda.get_device_name(dev)})" if gpu else "CPU, 1 thread"
    config = make_config(args.env, args.action)
    print(
        f"{args.env}, action {args.action} (constant), {config.slots} vehicle slots, "
        f"{config.frames} simulation sub-step(s) per policy step, float64, {where}; "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    he_cpu, he_wall = highway_env_rate(args.env, args.action, args.seconds)
    print(f"highway-env: {he_cpu:.1f} policy steps per CPU-second, {he_wall:.1f} per wall-second")
    fast_cpu, fast_wall = highway_env_rate(args.env, args.action, args.seconds, stock=False)
    print(
        f"highway-env as the project's envs run it (FastKinematics, FastRoad): {fast_cpu:.1f} policy "
        f"steps per CPU-second, {fast_wall:.1f} per wall-second (the 'x highway-env' columns use the stock"
        f" rate per CPU-second{'; batched rates per wall-second, on the GPU' if gpu else ''})\n"
    )
    header = f"{'B':>8} {'steps/CPU-s':>12} {'steps/wall-s':>13} {'x highway-env':>14} {'ms/step':>9}"
    header += f" {'MB state':>9}"
    print(header)
    print("-" * len(header))
    best = 0.0
    for b in args.batches:
        state = reset(range(b), config, dev)
        action = torch.full((b,), CONSTANT_ACTION[args.action], device=dev)
        holder = [state]

        def run() -> None:
            holder[0] = policy_step(holder[0], action)  # noqa: B023

        cpu, wall, _ = timed(run, args.seconds)
        rate = b / (wall if gpu else cpu)
        best = max(best, rate)
        print(
            f"{b:>8} {b / cpu:>12.0f} {b / wall:>13.0f} {rate / he_cpu:>13.0f}x {wall * 1e3:>9.2f} "
            f"{state_bytes(state) / 2**20:>9.2f}",
            flush=True,
        )
        holder.clear()  # free the batch (large B on a GPU) before the next one
        del state
    print(
        f"\nbest: {best:.0f} policy steps per {per} = {best / he_cpu:.0f}x highway-env "
        f"({best / fast_cpu:.0f}x highway-env as the project's envs run it)"
    )
    b = max(args.batches)
    state32 = reset(range(b), config, dev, dtype=torch.float32)
    holder32 = [state32]
    action32 = torch.full((b,), CONSTANT_ACTION[args.action], device=dev)

    def run32() -> None:
        holder32[0] = policy_step(holder32[0], action32)

    cpu32, wall32, _ = timed(run32, args.seconds)
    rate32 = b / (wall32 if gpu else cpu32)
    print(
        f"aside, float32 (no parity claim) at B={b}: {rate32:.0f} policy steps per {per} "
        f"= {rate32 / he_cpu:.0f}x highway-env"
    )
    holder32.clear()
    del state32
    probe = reset(range(256), config)
    print(
        f"state memory: {state_bytes(probe) / 256:.0f} B per episode, "
        f"{state_bytes(probe) / (256 * config.slots):.0f} B per vehicle slot"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    if args.policy_batches:
        ref_cpu, ref_wall = highway_env_policy_rate(args.env, args.policy, args.seconds)
        print(
            f"\nwith {args.policy} choosing every action: highway-env (the project's env) {ref_cpu:.1f} "
            f"policy steps per CPU-second, {ref_wall:.1f} per wall-second (batch 1)"
        )
        for b in args.policy_batches:
            p_cpu, p_wall, ms = batched_policy_rate(args.env, args.policy, b, args.seconds, args.device)
            rate = p_wall if gpu else p_cpu
            print(
                f"  batched B={b:>7}: {p_cpu:>9.0f} per CPU-second, {p_wall:>9.0f} per wall-second, "
                f"{ms:8.2f} ms/step: {rate / ref_cpu:.0f}x highway-env with {args.policy}",
                flush=True,
            )

    b = args.profile_batch
    state = reset(range(b), config, dev)
    for _ in range(3):  # lane changes under way, some crashes
        state = step(state, torch.full((b,), CONSTANT_ACTION[args.action], device=dev))
    print(f"\nwhere a step goes (B={b}, {'wall' if gpu else 'CPU'} ms per call):")
    for name, (cpu_ms, wall_ms) in components(state, 0.5).items():
        print(f"  {name:20s} {wall_ms if gpu else cpu_ms:8.2f}")
    action = torch.full((b,), CONSTANT_ACTION[args.action], device=dev)
    activities = [torch.profiler.ProfilerActivity.CPU]
    activities += [torch.profiler.ProfilerActivity.CUDA] if gpu else []
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            state = policy_step(state, action)
        sync()
    print(f"\ntorch.profiler, 3 policy steps at B={b}:")
    sort = "self_cuda_time_total" if gpu else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=28))


if __name__ == "__main__":
    main()
