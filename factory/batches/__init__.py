"""A batch turns seed indices into rows; one class per shape of recipe."""
