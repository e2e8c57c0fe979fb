"""The stages a reading passes through, one module each (docs/architecture.md): ``ingest`` ->
``writer`` (durable, then acked) -> ``alarm_loop`` (judges the stored record with
monitor.alarms) -> ``fanout`` -> ``hub``, wired together by ``service``; ``caches`` and
``views`` serve reads, ``health`` counts every stage's failures."""
