"""Detection: headers and meetings in, touchpoints with real people out. Pure functions."""
