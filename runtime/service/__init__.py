"""The search service (`sketchsearch serve`): the retriever behind HTTP, with the drawing page.

Torch-free like ``retrieve``. Its web stack (FastAPI on Starlette and AnyIO, uvicorn,
python-multipart, prometheus_client) comes from the ``[serve]`` extra and is imported only
by this package; ADR 0007 records the choice. The pieces, one job each:

- ``batcher``: gathers concurrent requests into one engine call (bounded queue);
- ``live``: the retriever answering now, replaced when the gallery commits a new generation;
- ``item_images``: a result's image (thumbnail, larger view or original) by item id only;
- ``metrics``: the Prometheus counters and histograms;
- ``errors``: the one JSON error shape every endpoint answers with;
- ``app``: the HTTP endpoints; ``server``: binding the socket and running uvicorn.
"""
