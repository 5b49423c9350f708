"""Chat commands: platform-neutral answers and periods, Telegram and Slack adapters."""
