"""Shared helpers of the SQS client suites (run by Tests/TernIntegrationTests/SQSClientTests.swift).

Environment:
  SQS_ENDPOINT   the endpoint URL of the server under test, e.g. http://127.0.0.1:9324
  SQS_ACCESS_KEY / SQS_SECRET_KEY   credentials (any value when authentication is off)
"""
import hashlib
import os
import struct
import sys
import time
import unittest
import uuid

import boto3
import botocore.config

ENDPOINT = os.environ.get("SQS_ENDPOINT", "http://127.0.0.1:9324")
ACCESS_KEY = os.environ.get("SQS_ACCESS_KEY", "test")
SECRET_KEY = os.environ.get("SQS_SECRET_KEY", "test")
REGION = os.environ.get("SQS_REGION", "us-east-1")


def client(access_key=None, secret_key=None, endpoint=None):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint or ENDPOINT,
        region_name=REGION,
        aws_access_key_id=access_key or ACCESS_KEY,
        aws_secret_access_key=secret_key or SECRET_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60, connect_timeout=10),
    )


def unique(prefix="q"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8")).hexdigest()


def md5_of_attributes(attributes: dict) -> str:
    """MD5OfMessageAttributes computed independently, from the SQS Developer Guide's algorithm."""
    data = b""
    for name in sorted(attributes):
        value = attributes[name]
        data_type = value["DataType"]
        data += struct.pack(">I", len(name.encode())) + name.encode()
        data += struct.pack(">I", len(data_type.encode())) + data_type.encode()
        if data_type.startswith("Binary"):
            raw = value["BinaryValue"]
            data += b"\x02" + struct.pack(">I", len(raw)) + raw
        else:
            raw = value["StringValue"].encode("utf-8")
            data += b"\x01" + struct.pack(">I", len(raw)) + raw
    return hashlib.md5(data).hexdigest()


def wait_until(condition, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError("condition not met within %.0f s" % timeout)


def main():
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    program = unittest.main(module="__main__", testRunner=runner, exit=False)
    sys.exit(0 if program.result.wasSuccessful() else 1)
