"""Daily and weekly summaries: schedule, build, text, chart, and the CLI command."""
