"""``python -m rtcap`` runs the command line, like the ``rtcap`` script."""

from rtcap.cli import main

main()
