"""One module per ``unitalker`` subcommand (or group); each defines ``add_parser(subparsers)``.

Handlers import heavy modules lazily and print; library code never prints.
"""
