"""Differential test: one scripted sequence of SQS requests against moto_server and against ternd;
the normalized responses (ids, handles, timestamps, hosts and account ids masked) must agree,
except for the differences docs/sqs.md lists as deliberate (DELIBERATE below, each with its reason).
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

from botocore.exceptions import ClientError

from common import ENDPOINT, client, main, unique

# Differences from moto that are deliberate (see docs/sqs.md, "Differences from moto"): step name -> reason.
DELIBERATE = {
    # moto accepts a queue re-created right after deletion; SQS waits 60 s.
    "recreate-deleted": "SQS answers QueueDeletedRecently within 60 s; moto re-creates at once",
    # Validations SQS documents and moto skips.
    "send-bad-characters": "SQS refuses characters outside XML 1.0 (InvalidMessageContents); moto stores them",
    "send-eleven-attributes": "SQS allows at most 10 message attributes; moto accepts more",
    "set-attributes-out-of-range": "SQS refuses VisibilityTimeout over 43,200 (InvalidAttributeValue); moto accepts it",
    "set-attributes-unknown": "SQS refuses unknown attribute names (InvalidAttributeName); moto ignores them",
    "fifo-name-without-attribute": "SQS needs FifoQueue=true for a .fifo name (InvalidParameterValue); moto creates a FIFO queue",
}

MASKED_KEYS = {"MessageId", "ReceiptHandle", "RequestId", "SenderId", "SequenceNumber", "CreatedTimestamp",
               "LastModifiedTimestamp", "SentTimestamp", "ApproximateFirstReceiveTimestamp", "MD5OfMessageSystemAttributes",
               "Message"}


def normalize(value, key=None):
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in sorted(value.items()) if k != "ResponseMetadata"}
    if isinstance(value, list):
        items = [normalize(v) for v in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))
    if key in MASKED_KEYS:
        return "<masked>"
    if isinstance(value, str):
        value = re.sub(r"https?://[^/]+/\d{12}/", "URL/", value)
        value = re.sub(r"arn:aws:sqs:[^:]+:\d{12}:", "ARN:", value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(sqs, suffix):
    """The scripted sequence; returns [(step, normalized outcome)]."""
    outcomes = []

    def step(name, call):
        try:
            result = call()
            outcomes.append((name, ("ok", normalize(result))))
            return result
        except ClientError as error:
            outcomes.append((name, ("error", error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"])))
            return None

    name = "diff-" + suffix
    url = step("create", lambda: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"}))["QueueUrl"]
    step("create-same", lambda: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"}))
    step("create-different", lambda: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "31"}))
    step("get-url", lambda: sqs.get_queue_url(QueueName=name))
    step("get-url-missing", lambda: sqs.get_queue_url(QueueName=name + "-missing"))
    step("send", lambda: sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes={
        "s": {"DataType": "String", "StringValue": "v"}, "n": {"DataType": "Number", "StringValue": "12"},
        "b": {"DataType": "Binary", "BinaryValue": b"\x01\x02"}}))
    step("send-batch", lambda: sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "one"}, {"Id": "b", "MessageBody": "two"}]))
    step("send-batch-duplicate-ids", lambda: sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "one"}, {"Id": "a", "MessageBody": "two"}]))
    step("send-batch-too-many", lambda: sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": "m"} for i in range(11)]))
    step("send-missing-queue", lambda: sqs.send_message(QueueUrl=url + "-missing", MessageBody="x"))
    step("receive-too-many", lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11))
    received = step("receive", lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                                           AttributeNames=["ApproximateReceiveCount"]))
    messages = (received or {}).get("Messages", [])
    step("attributes", lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "DelaySeconds", "VisibilityTimeout", "MessageRetentionPeriod", "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible", "ReceiveMessageWaitTimeSeconds"]))
    step("attributes.MaximumMessageSize", lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"]))
    step("attributes-unknown", lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nope"]))
    step("delete-batch", lambda: sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]))
    step("change-visibility-bad-handle", lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="garbage",
                                                                                VisibilityTimeout=5))
    step("delete-bad-handle", lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage"))
    # Sends that SQS refuses go to a queue of their own, so that what moto accepts cannot change later steps.
    bad = step("bad-create", lambda: sqs.create_queue(QueueName="bad-" + suffix))["QueueUrl"]
    step("send-bad-characters", lambda: sqs.send_message(QueueUrl=bad, MessageBody="bell \x07"))
    step("send-delay-too-long", lambda: sqs.send_message(QueueUrl=bad, MessageBody="x", DelaySeconds=901))
    step("send-eleven-attributes", lambda: sqs.send_message(QueueUrl=bad, MessageBody="x", MessageAttributes={
        f"k{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}))
    step("send-for-filter", lambda: sqs.send_message(QueueUrl=url, MessageBody="filtered", MessageAttributes={
        "a.x": {"DataType": "String", "StringValue": "1"}, "a.y": {"DataType": "Number", "StringValue": "2"},
        "b": {"DataType": "String", "StringValue": "3"}}))
    step("receive-filtered", lambda: sqs.receive_message(QueueUrl=url, MessageAttributeNames=["a.*"], VisibilityTimeout=0))
    step("receive-by-name", lambda: sqs.receive_message(QueueUrl=url, MessageAttributeNames=["b"], VisibilityTimeout=0))
    step("set-attributes-out-of-range", lambda: sqs.set_queue_attributes(QueueUrl=bad, Attributes={"VisibilityTimeout": "43201"}))
    step("set-attributes-unknown", lambda: sqs.set_queue_attributes(QueueUrl=bad, Attributes={"Nope": "1"}))
    dlq = step("dlq-create", lambda: sqs.create_queue(QueueName=name + "-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    step("redrive-set", lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 4})}))
    step("redrive-get", lambda: {k: json.loads(v) for k, v in sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"].items()})
    step("dead-letter-sources", lambda: sqs.list_dead_letter_source_queues(QueueUrl=dlq))
    step("fifo-name-without-attribute", lambda: sqs.create_queue(QueueName="bad-" + suffix + "-x.fifo"))
    step("set-attributes", lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "5"}))
    step("attributes-after-set", lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds"]))
    step("tag", lambda: sqs.tag_queue(QueueUrl=url, Tags={"team": "a", "env": "b"}))
    step("untag", lambda: sqs.untag_queue(QueueUrl=url, TagKeys=["env"]))
    step("list-tags", lambda: sqs.list_queue_tags(QueueUrl=url))
    step("list", lambda: sqs.list_queues(QueueNamePrefix=name))
    step("purge", lambda: sqs.purge_queue(QueueUrl=url))
    step("purge-again", lambda: sqs.purge_queue(QueueUrl=url))
    fifo_name = "diff-" + suffix + ".fifo"
    fifo = step("fifo-create", lambda: sqs.create_queue(QueueName=fifo_name, Attributes={"FifoQueue": "true"}))["QueueUrl"]
    step("fifo-missing-group", lambda: sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageDeduplicationId="1"))
    step("fifo-missing-dedup", lambda: sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g"))
    for i in range(3):
        step(f"fifo-send-{i}", lambda i=i: sqs.send_message(QueueUrl=fifo, MessageBody=f"f{i}", MessageGroupId="g",
                                                             MessageDeduplicationId=f"d{i}"))
    step("fifo-send-duplicate", lambda: sqs.send_message(QueueUrl=fifo, MessageBody="dup", MessageGroupId="g",
                                                         MessageDeduplicationId="d0"))
    fifo_received = step("fifo-receive", lambda: sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10,
                                                                     AttributeNames=["MessageGroupId", "MessageDeduplicationId"]))
    if fifo_received:
        outcomes.append(("fifo-order", ("ok", [m["Body"] for m in fifo_received.get("Messages", [])])))
    step("delete-queue", lambda: sqs.delete_queue(QueueUrl=url))
    step("recreate-deleted", lambda: sqs.create_queue(QueueName=name))
    step("delete-fifo", lambda: sqs.delete_queue(QueueUrl=fifo))
    step("delete-dlq", lambda: sqs.delete_queue(QueueUrl=dlq))
    return outcomes


def differences(moto, tern):
    """The steps whose normalized outcomes differ, other than the deliberate ones."""
    return [f"{step}:\n  moto: {moto[step]}\n  tern: {tern.get(step)}" for step in moto
            if moto[step] != tern.get(step) and step not in DELIBERATE]


class DifferentialTests(unittest.TestCase):
    outcomes = None

    def test_z_checker_catches_a_planted_difference(self):
        """Runs after the comparison (alphabetical order): a planted change in a body, a masked
        id that is not masked, a different error code must each be reported."""
        self.assertIsNotNone(self.outcomes)
        planted = dict(self.outcomes)
        planted["fifo-order"] = ("ok", ["f0", "f2", "f1"])
        self.assertEqual(len(differences(self.outcomes, planted)), 1)
        planted = dict(self.outcomes)
        planted["get-url-missing"] = ("error", "QueueDoesNotExist", 400)
        self.assertEqual(len(differences(self.outcomes, planted)), 1)
        self.assertNotEqual(normalize({"MD5OfBody": "a"}), normalize({"MD5OfBody": "b"}))
        self.assertEqual(normalize({"MessageId": "a"}), normalize({"MessageId": "b"}))

    @classmethod
    def setUpClass(cls):
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        cls.port = free_port()
        cls.log = open(os.environ.get("MOTO_LOG", os.devnull), "w")
        cls.moto = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(cls.port)], stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto_server did not start")

    @classmethod
    def tearDownClass(cls):
        cls.moto.kill()  # in-memory and throwaway; it does not always stop on SIGTERM
        cls.moto.wait(10)
        cls.log.close()

    def test_tern_agrees_with_moto(self):
        suffix = unique("d").split("-")[1]
        moto = dict(script(client(endpoint=f"http://127.0.0.1:{self.port}"), suffix))
        tern = dict(script(client(), suffix))
        self.__class__.outcomes = moto
        self.assertEqual(list(moto), list(tern))
        found = differences(moto, tern)
        self.assertEqual(found, [], "\n".join(found))
        # The deliberate differences are still differences (else the list is stale).
        for step in DELIBERATE:
            self.assertNotEqual(moto[step], tern[step], f"{step} agrees now: remove it from DELIBERATE and docs/sqs.md")


if __name__ == "__main__":
    main()
