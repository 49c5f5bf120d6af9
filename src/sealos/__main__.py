"""`python -m sealos` runs the command line."""

from sealos.cli import main

main()
