"""The command-line floor: every click command, above every library layer.

Each command parses options and calls one library function; library errors become exit codes
only here (`sketchsearch.cli.main.run`).
"""
