"""Actions (`init`, later `join` and `clean`): ordered lists of phases."""
