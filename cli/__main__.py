"""`python -m sketchsearch.cli …`: the same as the `sketchsearch` command."""

from sketchsearch.cli.main import main

if __name__ == "__main__":
    main()
