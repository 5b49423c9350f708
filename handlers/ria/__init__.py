"""RIA: the webhook, the calls_stat poller and client, and the one record parser."""
