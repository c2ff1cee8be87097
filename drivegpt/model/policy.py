"""DriveGPT as a :class:`~drivegpt.sim.policy.DrivePolicy`: keeps the last K steps and acts greedily.

Each step encodes only the new observation (a state's encoding does not depend on its place in the
window) and keeps the last K encodings, so a decision costs one state encoding and one pass of the
transformer over the 2K-1 tokens the last state can see (:meth:`DriveGPT.next_action_logits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drivegpt.core.rundir import policy_dir
from drivegpt.data.tokenizer import DISCRETE_VOCAB, tokenizer_from_json
from drivegpt.model.checkpoint import check_action_interface, load_policy_dir
from drivegpt.model.gpt import DriveGPT


class DriveGPTPolicy:
    """Greedy (argmax) DriveGPT driver; ``act_batch`` drives B envs with B separate histories.

    With ``sampler`` set (a seeded torch.Generator) it samples from ``softmax(logits / temperature)``
    instead: the exploring policy of RL fine-tuning.
    """

    def __init__(
        self, model: DriveGPT, meta: dict[str, Any], threads: int | None = None, source: str | Path = ""
    ):
        self.source = str(source) or "this policy's policy.json"  # named in interface-mismatch errors
        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.meta = meta
        self.tokenizer, self.normalizer = tokenizer_from_json(meta["tokenizer"])
        self.action_kind: str = meta["action"]
        self.env_config: dict[str, Any] = {"observation": meta["observation"], **meta["env_config"]}
        self.K = model.cfg.context
        self.sampler: torch.Generator | None = None
        self.temperature = 1.0
        self.reset_batch(1)

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> DriveGPTPolicy:
        path = Path(path)
        path = policy_dir(path)  # a run directory or its policy/
        model, meta = load_policy_dir(path)
        return cls(model, meta, threads, source=path / "policy.json")

    def __deepcopy__(self, memo: dict) -> DriveGPTPolicy:
        """Copies share the (read-only) model and copy the history: cheap look-ahead rollouts."""
        new = object.__new__(DriveGPTPolicy)
        new.__dict__.update(self.__dict__)
        new.obs, new.tokens, new.steps = self.obs.clone(), self.tokens.clone(), self.steps.copy()
        new.states = self.states.clone()
        new.sampler = None  # look-ahead predicts with the greedy policy
        return new

    # -- DrivePolicy ------------------------------------------------------------------------
    def reset(self, seed: int, env: gym.Env | None = None) -> None:
        """Start an episode; an ``env`` of another action interface than the policy's is an error."""
        if env is not None:
            check_action_interface(self.meta, self.source, env)
        self.reset_batch(1)

    def act(self, observation: np.ndarray) -> Any:
        return self.act_batch(np.asarray(observation)[None])[0]

    @torch.inference_mode()
    def executed(self, action: Any) -> None:
        """The action actually executed at the last step (e.g. the human's during a takeover):
        the history then holds what happened, not what the policy proposed. One action (every
        row of the batch) or one per row: (B,) accel / meta ids, (B, 2) continuous."""
        a = np.asarray(action)
        one = a.ndim == (0 if self.tokenizer.kind in DISCRETE_VOCAB else 1)
        self.tokens[:, -1] = torch.from_numpy(self.tokenizer.encode(a[None] if one else a)).to(self.device)

    # -- batched form ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the model and the batched context live (``to`` moves them)."""
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> DriveGPTPolicy:
        """Move the model to ``device`` (e.g. ``"cuda"``) and start a fresh batched context there;
        ``act_batch`` still takes and returns numpy arrays."""
        self.model.to(device)
        self.reset_batch(self.obs.shape[0])
        return self

    @torch.inference_mode()
    def reset_batch(self, n: int) -> None:
        V, F, dev = self.model.cfg.n_vehicles, self.model.cfg.n_features, self.device
        self.obs = torch.zeros(n, self.K, V, F, device=dev)  # (B, K, V, F) left-padded normalised history
        self.tokens = torch.zeros(n, self.K, dtype=torch.long, device=dev)  # (B, K)
        self.steps = np.zeros(n, np.int64)
        blank = self.model.state_encoder(torch.zeros(1, 1, V, F, device=dev))  # (1, 1, C): a padding step
        self.states = blank.expand(n, self.K, -1).clone()  # (B, K, C) encodings of self.obs

    @torch.inference_mode()
    def push(self, observations: np.ndarray) -> None:
        """Append (B, V, F) raw observations to the context; their action slot is 0 until chosen."""
        x = torch.from_numpy(self.normalizer(observations)).to(self.device)  # (B, V, F)
        self.obs = torch.roll(self.obs, -1, dims=1)
        self.tokens = torch.roll(self.tokens, -1, dims=1)
        self.states = torch.roll(self.states, -1, dims=1)
        self.obs[:, -1] = x
        self.tokens[:, -1] = 0
        self.states[:, -1] = self.model.state_encoder(x[:, None])[:, 0]  # (B, C)
        self.steps += 1
        if self.steps.min() < self.K:  # zero the padding exactly as in training
            pad = torch.from_numpy(self.K - np.minimum(self.steps, self.K)).to(x.device)  # (B,)
            valid = torch.arange(self.K, device=x.device)[None, :] >= pad[:, None]  # (B, K)
            self.obs *= valid[..., None, None]
            self.tokens *= valid
            blank = self.model.state_encoder(torch.zeros(1, 1, *x.shape[1:], device=x.device))  # (1, 1, C)
            self.states = torch.where(valid[..., None], self.states, blank)

    @torch.inference_mode()
    def last_hidden(self) -> torch.Tensor:
        """(B, C) the model's final hidden state at the newest observation (what its heads read)."""
        return self.model.next_hidden(self.states, self.tokens)

    @torch.inference_mode()
    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        """(B, V, F) raw observations -> (B,) accel / meta ids or (B, 2) continuous actions."""
        self.push(observations)
        logits = self.model.head(self.last_hidden())  # (B, vocab)
        if self.sampler is None:
            token = logits.argmax(-1)  # (B,)
        else:
            probs = (logits / self.temperature).softmax(-1)  # (B, vocab)
            # the sampler is a CPU generator: the same draws whatever the model's device
            token = torch.multinomial(probs.cpu(), 1, generator=self.sampler)[:, 0].to(probs.device)  # (B,)
        self.tokens[:, -1] = token
        return self.tokenizer.decode(token.cpu().numpy())
