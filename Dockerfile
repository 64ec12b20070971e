# The blobstore server: `docker compose up` builds it (docker-compose.yml; docs/docker-compose.md).
# Configuration comes from BLOBSTORE_* variables (docs/configuration.md); the default command serves the native
# HTTP API on 8080 and the S3 API on 9000.
FROM python:3.12-slim

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY migrations ./migrations
COPY blobstore ./blobstore
RUN pip install --no-cache-dir --disable-pip-version-check ".[postgres,s3,server]" \
    && useradd --system --create-home --home-dir /var/lib/blobstore blobstore

USER blobstore
WORKDIR /var/lib/blobstore
ENV BLOBSTORE_HOME=/var/lib/blobstore
EXPOSE 8080 9000
ENTRYPOINT ["blobstore"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--s3-port", "9000"]
