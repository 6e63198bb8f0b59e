import sys

from benchmark.cli.parser import main

if __name__ == "__main__":
    sys.exit(main())
