"""The DriveGPT sequence model, its checkpoints and its imitation pretraining.

Owns: ``gpt`` (the causal transformer over state and action tokens), ``checkpoint`` (safetensors +
JSON policy directories, trainer state), ``policy`` (a checkpoint as a ``DrivePolicy``),
``pretrain`` (next-token imitation of the human logs) with ``pretrain_config`` (its settings),
``distributed`` (torchrun/DDP helpers).
May import: ``drivegpt.core``, ``drivegpt.sim``, ``drivegpt.data``.
"""
