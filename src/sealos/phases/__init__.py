"""The phases actions are made of; each module holds one phase."""
