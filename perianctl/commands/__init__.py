"""One module per command group. Keep module-level imports light: typer and the standard library.

Heavy imports (httpx, flytekit, grpc, fastapi) happen inside the command functions.
"""
