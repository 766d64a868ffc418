"""The ``cpuai`` command line: thin typer commands over the library, one module per verb."""
