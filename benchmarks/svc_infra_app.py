"""The baseline server of PEER-HTTP: svc-infra 1.22.2's own FastAPI storage routes over a local directory.

Downloads are ``add_storage(app, easy_storage(backend="local"), serve_files=True)``'s
``GET /files/{key}?expires=&signature=`` (an HMAC-signed URL, checked per request);
uploads are the multipart ``POST /upload`` route svc-infra's docstrings show
(``svc_infra.storage.add.get_storage``), which reads the file and puts it under
``uploads/<filename>``. The directory is ``STORAGE_BASE_PATH``. Run it with
``uvicorn benchmarks.svc_infra_app:app`` (needs svc-infra and python-multipart).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, UploadFile

from benchmarks.peer import load_svc_infra

if not load_svc_infra():
    raise ImportError("svc-infra is not installed (pip install --no-deps svc-infra==1.22.2 python-multipart)")

from svc_infra.storage.add import add_storage, get_storage
from svc_infra.storage.base import StorageBackend
from svc_infra.storage.easy import easy_storage

app = FastAPI()
add_storage(app, easy_storage(backend="local"), serve_files=True)


@app.post("/upload")
async def upload_file(file: UploadFile, storage: Annotated[StorageBackend, Depends(get_storage)]) -> dict[str, Any]:
    """svc-infra's upload example: the file's bytes under ``uploads/<filename>``; answers its signed URL."""
    content = await file.read()
    url = await storage.put(
        key=f"uploads/{file.filename}",
        data=content,
        content_type=file.content_type or "application/octet-stream",
        metadata={"user_id": "user_123"},
    )
    return {"url": url}
