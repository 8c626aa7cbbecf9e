"""``python -m custintel.cli``: the same as the ``custintel`` command."""

from custintel.cli.main import app

app()
