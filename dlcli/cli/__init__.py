"""The command-line interface: commands parse and print; the work happens in the library."""
