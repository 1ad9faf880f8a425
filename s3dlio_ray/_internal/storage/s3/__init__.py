"""The S3 layer: transports (HTTP/1.1 bulk path, HTTP/2 via httpx), signing, errors, client."""
