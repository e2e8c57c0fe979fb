"""Vigil monitor: ingest, store, alarms and fan-out for infusion-chair vital signs.

Vigil is not a certified medical device; the bedside monitor stays the primary alarm.
"""
