"""The web dashboard: the venue's risk picture, server-rendered (Jinja2), live over a WebSocket.

    source.py      the port: DashboardSource (a venue's view + change notifications), Viewer
    figures.py     every number a page shows, from the engine's own results and reports
    stress.py      shocks and cascades started from the stress page
    web.py         the routes (pages, JSON, WebSocket, static files): dashboard_router(config)
    standalone.py  an in-memory venue over a book and the exact ledger (BookVenue)
    app.py         the dashboard served on its own (crossmargin dashboard BOOK; the browser tests)

Layer: beside cli and service (they may import it; it imports adapters, engine and core).
Browser assets: frontend/README.md.
"""
