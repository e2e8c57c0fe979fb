"""Hypothesis strategies shared by the property tests. Append, never rewrite."""

from __future__ import annotations

from hypothesis import strategies as st

from monitor.model import SIGNAL_RANGES

signal_values = st.dictionaries(
    st.sampled_from(sorted(SIGNAL_RANGES)),
    st.floats(min_value=0, max_value=350, allow_nan=False, allow_infinity=False),
    min_size=1,
)
