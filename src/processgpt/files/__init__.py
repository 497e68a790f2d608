"""Files: storage backends for their bytes (:mod:`.storage`: the local filesystem, :mod:`.s3`:
S3-compatible) and :class:`~processgpt.files.service.FileService`, which keeps bytes and
metadata together (upload, download, signed links, delete)."""
