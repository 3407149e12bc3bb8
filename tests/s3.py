"""A local S3 server (moto's server mode) on a loopback port: real HTTP, real boto3 signing.

from s3 import s3_server  # noqa: F401  (makes the session fixture available to a module)

def test_x(s3_server, make_project):
    bucket = s3_server.new_bucket()           # private bucket, renditions-only policy applied
    project = make_project(storage_backend="s3", extra_env=s3_server.env(bucket))
"""

import json
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from conftest import background, free_port, wait_for_http

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class S3Server:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self, policy_file=None):
        """A fresh private bucket. With policy_file (a baked deploy/s3-bucket-policy.json), that
        policy is applied with the bucket name swapped in, as the site README tells users to."""
        name = f"tpl-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        if policy_file is not None:
            policy = json.loads(Path(policy_file).read_text())
            for statement in policy["Statement"]:
                arn = statement["Resource"]
                statement["Resource"] = f"arn:aws:s3:::{name}/" + arn.split("/", 1)[1]
            self.client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    def env(self, bucket):
        """The environment a baked s3 project needs to use this server and bucket."""
        return {
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
        }

    def keys(self, bucket, prefix=""):
        response = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in response.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with background(cmd, log=log) as process:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for_http(endpoint + "/moto-api/", timeout=30, process=process)
        yield S3Server(endpoint)
