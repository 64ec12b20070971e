"""An existing FastAPI app with blobstore mounted at /storage, and a route of its own that lists the
caller's invoices: ``uvicorn docs.examples.fastapi_app:app`` (configured like the CLI, by environment).

Browsers and other services reach the whole API at /storage/v1/... with their tokens or signed URLs;
the app's own handlers get the caller's Tenant from the same tokens. (No ``from __future__ import
annotations`` here: FastAPI must resolve the handler's annotations, which name a local.)
"""

from typing import Annotated

from fastapi import Depends, FastAPI

from blobstore import Settings, Tenant
from blobstore.fastapi import mount


def create(settings: Settings | None = None) -> FastAPI:
    """The app over the store ``settings`` name (default: the environment)."""
    app = FastAPI(title="invoices")
    storage = mount(app, prefix="/storage", settings=settings)
    reader = Depends(storage.tenant("read"))

    @app.get("/invoices")
    async def invoices(tenant: Annotated[Tenant, reader]) -> dict[str, object]:
        """The caller's invoices: keys under invoices/, with their sizes."""
        page = await tenant.list("invoices/")
        return {"tenant": tenant.name, "invoices": {info.key: info.size for info in page}}

    return app


app = create()
