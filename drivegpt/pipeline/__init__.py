"""The whole loop in one command: the pipeline config, its stages, the runner and the report.

Owns: ``config`` (``PipelineConfig`` and ``Stage``), ``stages`` (the training stages, each with its run,
check and commands, and ``STAGES``), ``eval_stages`` (search, benchmark, replay), ``outputs`` (where
the stages find each other's outputs),
``run`` (``run_pipeline``: run what is not done, resume what was killed), ``report``,
``report_flywheel``, ``report_cells`` and ``figures`` (the Markdown report read from the stage
outputs: its sections, the feedback loop's, the run's files and table cells they share, the plots),
``html`` (it as one self-contained HTML page), ``demo`` (the quickstart).
May import: every layer below it.
"""
