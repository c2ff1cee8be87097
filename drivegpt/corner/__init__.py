"""Corner cases: parameterised scenario families searched for failures, kept as replayable suites.

Owns: ``suite`` (scenarios, their outcomes, the suite format), ``search`` (random, Latin hypercube
and cross-entropy search for failures), ``naturalistic`` (the parameters' distributions on real
roads) with ``naturalistic_fit`` (their fit from the human logs), ``estimate`` (failure probability
under them: Monte Carlo or importance sampling) with ``estimate_report`` (its figures and plot) and
``estimate_family`` (a family's estimate: its law, simulator and starting proposal), ``mixture``
(the Gaussian-mixture proposals importance sampling draws from, and their weighted EM fit),
``halfspace`` (the naturalistic law cut to the half-space beyond the failures, beside a mixture),
``proposal_file`` (a fitted proposal saved by one estimate and reused by the next, and pools of
them), ``fit_proposal`` (a proposal to reuse, fitted by rounds of pooled refits), ``surrogate``
(a family's physics surrogate and the proposal it shapes with no pilot), ``batched``
(the estimate's simulations on the batched simulator, for the families it ports) with ``traces``
(what its episodes did, as the outcomes highway-env's traces give).
The families themselves are envs in ``drivegpt_envs.families``.
May import: ``drivegpt.core``, ``drivegpt.sim``, ``drivegpt.data``, ``drivegpt.model``,
``drivegpt.policies``, ``drivegpt.takeover``.
"""
