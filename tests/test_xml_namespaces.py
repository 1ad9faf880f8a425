"""S3 XML read by local names: AWS's namespace, another store's and none all mean the same.

A real HTTP server answers each request with the document a store would send; the client's
listings, deletes, multipart and errors must read the same in all three."""

from __future__ import annotations

import asyncio

import pytest
from conftest import answering, make_client

from s3dlio_ray._internal.storage.s3.errors import S3Error
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy

NAMESPACES = {
    "aws": ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"',
    "another": ' xmlns="http://doc.s3.amazonaws.com/2006-03-01/"',
    "none": "",
}


def documents(ns: str) -> dict[str, tuple[int, str]]:
    """What the store answers, by the request's first line."""
    return {
        "GET /b?list-type=2": (
            200,
            f"<ListBucketResult{ns}><Name>b</Name><IsTruncated>true</IsTruncated>"
            "<NextContinuationToken>t2</NextContinuationToken>"
            "<Contents><Key>p/obj-1</Key><Size>10</Size><ETag>&quot;e1&quot;</ETag></Contents>"
            "<Contents><Key>p/obj-2</Key><Size>20</Size><ETag>&quot;e2&quot;</ETag></Contents>"
            "<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes></ListBucketResult>",
        ),
        "POST /b?delete": (
            200,
            f"<DeleteResult{ns}><Error><Key>p/obj-2</Key><Code>AccessDenied</Code></Error>"
            "</DeleteResult>",
        ),
        "GET /b?uploads": (
            200,
            f"<ListMultipartUploadsResult{ns}><IsTruncated>false</IsTruncated>"
            "<Upload><Key>p/big</Key><UploadId>u-1</UploadId></Upload>"
            "</ListMultipartUploadsResult>",
        ),
        "POST /b/p/big?uploads": (
            200,
            f"<InitiateMultipartUploadResult{ns}><UploadId>u-2</UploadId>"
            "</InitiateMultipartUploadResult>",
        ),
        "GET /b/p/missing": (
            403,
            f"<Error{ns}><Code>AccessDenied</Code><Message>not yours</Message></Error>",
        ),
    }


def store(ns: str):
    answers = documents(ns)

    def answer(head: str, _: bytes) -> bytes:
        line = head.split(" HTTP/1.1")[0]
        status, body = next(
            (reply for start, reply in answers.items() if line.startswith(start)), (404, "")
        )
        data = body.encode()
        return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(data), data)

    return answering(answer)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_document_reads_the_same_in_any_namespace(namespace):
    async def main():
        server = await asyncio.start_server(store(NAMESPACES[namespace]), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"http://127.0.0.1:{port}", retry=RetryPolicy(1, 0.001, 0.01))
        try:
            page = await client.list_objects_page("b", "p/")
            deleted = await client.delete_objects("b", ["p/obj-1", "p/obj-2"])
            uploads = await client.list_multipart_uploads("b")
            upload_id = await client.create_multipart_upload("b", "p/big")
            with pytest.raises(S3Error) as denied:
                await client.get_object("b", "p/missing")
            return page, deleted, uploads, upload_id, denied.value
        finally:
            await client.aclose()
            server.close()

    page, deleted, uploads, upload_id, denied = asyncio.run(main())
    assert [(o.key, o.size, o.etag) for o in page.objects] == [
        ("p/obj-1", 10, '"e1"'),
        ("p/obj-2", 20, '"e2"'),
    ]
    assert page.next_token == "t2" and page.prefixes == ["p/sub/"]
    assert deleted == (1, ["p/obj-2"])
    assert [(u.key, u.upload_id) for u in uploads] == [("p/big", "u-1")]
    assert upload_id == "u-2"
    assert (denied.code, denied.server_message) == ("AccessDenied", "not yours")
