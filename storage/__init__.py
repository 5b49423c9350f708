"""SQLite storage: schema, calls, outbox, stats. Imports nothing from bot/ or handlers/."""
