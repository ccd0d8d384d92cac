"""Upload what the Lambda serves to S3 with boto3: unchanged files skipped, every file verified.

skyclass.json + the model file it names (never model.pt) go to s3://BUCKET/PREFIX/. A file whose
sha256 (kept in the object's metadata and checked by S3 itself through ChecksumSHA256) already
matches is not sent again; every object is verified after upload; skyclass.json goes last, so a
Lambda that cold-starts mid-upload never reads a manifest newer than the model files.
boto3 is imported only when S3 is used.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyclass.deploy.config import DeployError, validate_bundle
from skyclass.serving.bundle import MANIFEST_NAME, serving_files, sha256_file

SHA256_META = "sha256"


@dataclass
class UploadResult:
    """What upload_bundle did with each file (name -> 'uploaded' or 'unchanged')."""

    bucket: str
    prefix: str
    actions: dict[str, str]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _checksum_b64(hex_digest: str) -> str:
    """S3's ChecksumSHA256 is the base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def object_matches(head: dict[str, Any] | None, digest: str, size: int) -> bool:
    """The object holds these bytes: size, our sha256 metadata and S3's own checksum agree."""
    if head is None or head.get("ContentLength") != size:
        return False
    if head.get("Metadata", {}).get(SHA256_META) != digest:
        return False
    s3_checksum = head.get("ChecksumSHA256")
    return s3_checksum is None or s3_checksum == _checksum_b64(digest)


def upload_order(manifest: dict[str, Any]) -> list[str]:
    """The served model first, skyclass.json last (it is what a cold start reads first).

    Only what the Lambda loads: model.pt (TorchScript, for torch users) and an unserved FP32
    model.onnx stay in the local bundle.
    """
    return [*serving_files(manifest), MANIFEST_NAME]


def upload_file(client: Any, path: Path, bucket: str, key: str, digest: str) -> None:
    """One PUT with S3 checking the body against our sha256 (a torn upload is refused)."""
    with open(path, "rb") as body:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            Metadata={SHA256_META: digest},
            ChecksumSHA256=_checksum_b64(digest),
            ContentType="application/octet-stream",
        )


def upload_bundle(
    bundle: Path, bucket: str, prefix: str, client: Any = None, log: Callable[[str], None] = print
) -> UploadResult:
    """Upload the bundle's files to s3://bucket/prefix/, skipping unchanged ones; verify all."""
    manifest = validate_bundle(bundle)
    client = client or s3_client()
    actions: dict[str, str] = {}
    for name in upload_order(manifest):
        path = bundle / name
        digest, size, key = sha256_file(path), path.stat().st_size, f"{prefix}/{name}"
        try:
            if object_matches(_head(client, bucket, key), digest, size):
                actions[name] = "unchanged"
            else:
                upload_file(client, path, bucket, key, digest)
                actions[name] = "uploaded"
            if not object_matches(_head(client, bucket, key), digest, size):
                raise DeployError(
                    f"s3://{bucket}/{key} does not match {path} after upload "
                    "(size or sha256 differ); try again"
                )
        except DeployError:
            raise
        except Exception as exc:  # botocore's many error types all mean "S3 refused"
            raise DeployError(f"cannot upload {path} to s3://{bucket}/{key}: {exc}") from exc
        log(f"{actions[name]:>9}  s3://{bucket}/{key}  ({size / 1e6:.2f} MB, sha256 {digest[:12]})")
    return UploadResult(bucket=bucket, prefix=prefix, actions=actions)


def s3_client(region: str | None = None) -> Any:
    """boto3 S3 client; boto3 itself honours AWS_ENDPOINT_URL (a local S3 in tests)."""
    import boto3

    return boto3.client("s3", region_name=region)
