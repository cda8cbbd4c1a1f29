"""The margin service: the venue core online over HTTP and WebSocket (FastAPI, uvicorn).

    app.py          create_app(ServiceContext): routes, problem+json errors, middleware, lifespan
    settings.py     ServiceSettings: database URL, opening book, limits (one frozen value)
    keys.py         API keys: format, scrypt hashes at rest, roles holder / risk / admin
    keystore.py     the `api_keys` and `api_audit` tables (SQLAlchemy Core, same database as the log)
    access.py       who may see and do what: the permission rules, one place
    limits.py       token bucket per key (429) and admission per request class (503), no queueing
    metrics.py      Prometheus registry per app: events/s, margin-cycle latency, queue depth, ...
    logs.py         JSON-lines structured logs
    problems.py     RFC 9457 problem+json errors naming the field
    models.py       pydantic request and response bodies (the edge; the engine never sees them)
    routes/         one module per resource group

Layering: the service wires adapters into the engine, like the CLI, and neither imports the other
(import-linter's layers contract in pyproject.toml).
"""
