"""`digitkit serve`: the device runtime behind an HTTP API and a draw-a-digit page.

``requests.py`` turns request bodies into 28x28 digits (no web framework there), ``app.py`` is the
Starlette application, ``server.py`` runs it on uvicorn. The runtime knows nothing of any of them.
"""
