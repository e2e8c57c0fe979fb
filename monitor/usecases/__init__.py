"""Use cases: each state-changing command as one atomic step, its guard in SQL (docs/api.md,
"Repeats and races")."""
