"""The local web dashboard: sessions, replay timelines, analytics and costs (FastAPI + Jinja2).

Imported only by ``opencell dashboard`` and ``opencell run --dashboard``: FastAPI, uvicorn and
Jinja2 are never loaded for other commands. Start with ``server.DashboardServer`` or
``app.create_app``.
"""
