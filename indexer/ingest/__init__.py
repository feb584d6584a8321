"""File -> Document + Passages: decode, files (limits, dispatch), one module per format, clean, split, prepare."""
