"""`python -m alliance_digest.cli`: the same as the `digest` command."""

from . import main

main()
