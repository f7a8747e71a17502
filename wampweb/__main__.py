"""``python -m wampweb``: the same as the ``wampweb`` command."""

from wampweb._cli import main

main()
