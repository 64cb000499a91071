"""Images and repositories as the units of work: the pure planning of the operator's passes."""
