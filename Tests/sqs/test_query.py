"""boto3 1.26 (botocore 1.29), which speaks the Query protocol (form-encoded requests, XML
responses), against ternd's SQS endpoint: the core actions, errors by legacy code, MD5s.
"""
import json
import unittest

import botocore
from botocore.exceptions import ClientError

from common import client, main, md5_of_attributes, md5_of_body, unique


class QueryProtocolTests(unittest.TestCase):
    def setUp(self):
        self.sqs = client()

    def test_client_speaks_the_query_protocol(self):
        self.assertEqual(self.sqs.meta.service_model.protocol, "query", botocore.__version__)

    def test_core_actions(self):
        name = unique("query")
        url = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "20"}, tags={"a": "b"})["QueueUrl"]
        self.assertEqual(self.sqs.get_queue_url(QueueName=name)["QueueUrl"], url)
        self.assertIn(url, self.sqs.list_queues(QueueNamePrefix=name)["QueueUrls"])
        self.assertEqual(self.sqs.list_queue_tags(QueueUrl=url)["Tags"], {"a": "b"})
        attributes = {"s": {"DataType": "String", "StringValue": "x & <y>"},
                      "n": {"DataType": "Number", "StringValue": "1.5"},
                      "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}
        body = "query <body> & \"quotes\" \r\n ✓"
        sent = self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
        self.assertEqual(sent["MD5OfMessageBody"], md5_of_body(body))
        self.assertEqual(sent["MD5OfMessageAttributes"], md5_of_attributes(attributes))
        batch = self.sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "one"},
                                                                   {"Id": "2", "MessageBody": "two", "DelaySeconds": 901}])
        self.assertEqual([e["Id"] for e in batch["Successful"]], ["1"])
        self.assertEqual([e["Code"] for e in batch["Failed"]], ["InvalidParameterValue"])
        received = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                            AttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
        by_body = {m["Body"]: m for m in received}
        self.assertEqual(set(by_body), {body, "one"})
        self.assertEqual(by_body[body]["MessageAttributes"], attributes)
        self.assertEqual(by_body[body]["MD5OfMessageAttributes"], md5_of_attributes(attributes))
        self.assertEqual(by_body[body]["Attributes"]["ApproximateReceiveCount"], "1")
        self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=by_body["one"]["ReceiptHandle"], VisibilityTimeout=0)
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=by_body[body]["ReceiptHandle"])
        again = self.sqs.receive_message(QueueUrl=url)["Messages"]
        self.assertEqual([m["Body"] for m in again], ["one"])
        result = self.sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": again[0]["ReceiptHandle"]}])
        self.assertEqual([e["Id"] for e in result["Successful"]], ["x"])
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "1"})
        got = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds", "VisibilityTimeout"])["Attributes"]
        self.assertEqual(got, {"DelaySeconds": "1", "VisibilityTimeout": "20"})
        self.sqs.purge_queue(QueueUrl=url)
        self.sqs.delete_queue(QueueUrl=url)

    def test_errors_by_legacy_code(self):
        with self.assertRaises(ClientError) as caught:
            self.sqs.get_queue_url(QueueName=unique("absent"))
        self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.NonExistentQueue")
        url = self.sqs.create_queue(QueueName=unique("qerr"))["QueueUrl"]
        with self.assertRaises(ClientError) as caught:
            self.sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}])
        self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
        with self.assertRaises(ClientError) as caught:
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nope"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidAttributeName")

    def test_fifo_over_query(self):
        url = self.sqs.create_queue(QueueName=unique("qf") + ".fifo",
                                    Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        first = self.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
        second = self.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
        self.assertEqual(first["MessageId"], second["MessageId"])
        self.assertIn("SequenceNumber", first)


if __name__ == "__main__":
    main()
