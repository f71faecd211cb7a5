"""``python -m engine.cli``: the ``playbook`` command."""

from engine.cli import main

main()
