"""The innermost layer: the domain's data (``model``), its errors and stable codes
(``errors``), fault points (``faults``), device bindings (``bindings``) and the hashing of
tokens and passwords (``security``). It imports nothing else of the monitor."""
