"""The ``drivegpt`` command line: thin typer commands over the library.

Owns: ``app`` (the ``drivegpt`` command and its sub-commands), ``util`` (one-line errors for user
errors, the command line as run), one module per command group.
May import: every layer.
"""
