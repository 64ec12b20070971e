"""The HTTP service (``blobstore serve``): FastAPI routes over ``Tenant``, token auth, problem documents."""

from blobstore.server.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
