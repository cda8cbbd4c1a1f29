"""The `crossmargin` command line (Typer + Rich). Calls the engine, never core internals."""
