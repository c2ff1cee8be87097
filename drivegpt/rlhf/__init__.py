"""Learning from takeovers: preferences, the reward model, PPO, DPO, DAgger and the flywheel.

Owns: ``preferences`` (pairs, rankings and weakly-good steps from takeover clips, and their losses),
``reward_model`` (Bradley-Terry reward model on the pretrained backbone), ``ppo`` (KL-regularised PPO
against the reward model under the live safety driver), ``actor_critic`` (the value head, GAE and
clipped update both PPOs share), ``ppo_batched`` (the same PPO on B monitored episodes of the
batched simulator at once) with ``ppo_batched_config`` (its settings), ``dpo`` (direct preference
optimisation),
``dagger`` (HG-DAgger and DAgger: imitation of the human's corrections, aggregated over rounds),
``dagger_batched`` (their labels collected on the batched simulator),
``flywheel`` (rounds of drive -> clips -> reward model -> fine-tune -> evaluate, resumable) with
``flywheel_config`` (its settings).
May import: every layer below it (core, sim, data, model, policies, takeover, corner, eval).
"""
