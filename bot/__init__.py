"""ria-calls-bot: the process (CLI, config, wiring, dispatcher, channels, messages)."""

__version__ = "0.1.0"
