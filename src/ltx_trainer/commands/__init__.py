"""CLI verb implementations too large for cli.py; cli.py registers them."""
