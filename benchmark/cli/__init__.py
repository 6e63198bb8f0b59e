"""The command line: the parser and one function per subcommand of ``python -m benchmark``, turning arguments into
library calls. Nothing imports it.
"""
