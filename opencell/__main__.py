"""``python -m opencell`` runs the ``opencell`` command."""

from opencell.cli import main

main()
