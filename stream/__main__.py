"""Run the command line: ``python -m stream worker``."""

from stream.cli import main

if __name__ == "__main__":
    main()
