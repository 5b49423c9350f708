"""Delivery: the outbox dispatcher's stages, rendering, and one sender per channel."""
