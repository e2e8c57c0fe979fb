"""Wire formats. ``device`` is what bedside devices speak; ``feed`` is what panels receive."""
