"""Bad input on the wire: malformed JSON, unknown actions, wrong X-Amz-Target, missing parameters,
bad form encoding, mutated requests. Each gets SQS's error, never a 5xx, and changes nothing.
"""
import json
import random
import unittest
import urllib.error
import urllib.request

from common import ENDPOINT, client, main, unique


def post(body: bytes, headers: dict, path="/"):
    request = urllib.request.Request(ENDPOINT + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def json_call(target, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return post(data, {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})


class BadInputTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sqs = client()
        cls.name = unique("bad")
        cls.url = cls.sqs.create_queue(QueueName=cls.name, Attributes={"VisibilityTimeout": "31"})["QueueUrl"]
        cls.sqs.send_message(QueueUrl=cls.url, MessageBody="keep me")

    def snapshot(self):
        queues = self.sqs.list_queues().get("QueueUrls", [])
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])["Attributes"]
        attributes.pop("ApproximateNumberOfMessagesNotVisible")
        return queues, attributes

    def expect_error(self, response, status, type_name, query_code):
        code, headers, body = response
        self.assertEqual(code, status, body)
        document = json.loads(body)
        self.assertEqual(document["__type"].split("#")[-1], type_name)
        self.assertTrue(document["message"])
        lowered = {k.lower(): v for k, v in headers.items()}
        self.assertEqual(lowered["x-amzn-query-error"].split(";")[0], query_code)

    def test_each_malformed_json_request_gets_its_error_and_changes_nothing(self):
        before = self.snapshot()
        cases = [
            (json_call("AmazonSQS.SendMessage", b'{"QueueUrl": '), 400, "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", b'{"QueueUrl": "%s", "MessageBody": "x",}' % self.url.encode()), 400,
             "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", b'{"a": 1, "a": 2}'), 400, "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", b'[1, 2]'), 400, "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", b'{"QueueUrl": "\xff\xfe"}'), 400, "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.NoSuchAction", {}), 400, "UnknownOperationException", "UnknownOperationException"),
            (json_call("Wrong.SendMessage", {}), 400, "UnknownOperationException", "UnknownOperationException"),
            (json_call("AmazonSQS.SendMessage", {"QueueUrl": self.url}), 400, "MissingParameter", "MissingParameter"),
            (json_call("AmazonSQS.SendMessage", {"MessageBody": "x"}), 400, "MissingParameter", "MissingParameter"),
            # Wrong JSON types are the deserializer's SerializationException.
            (json_call("AmazonSQS.SendMessage", {"QueueUrl": self.url, "MessageBody": 5}), 400,
             "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", {"QueueUrl": self.url, "MessageBody": "x", "DelaySeconds": "soon"}), 400,
             "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", {"QueueUrl": self.url, "MessageBody": "x", "MessageAttributes": []}), 400,
             "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.SendMessage", {"QueueUrl": self.url, "MessageBody": "x", "DelaySeconds": 901}), 400,
             "InvalidParameterValue", "InvalidParameterValue"),
            (json_call("AmazonSQS.ReceiveMessage", {"QueueUrl": self.url, "MaxNumberOfMessages": 1000}), 400,
             "InvalidParameterValue", "InvalidParameterValue"),
            (json_call("AmazonSQS.CreateQueue", {"QueueName": self.name, "Attributes": {"VisibilityTimeout": "-1"}}), 400,
             "InvalidAttributeValue", "InvalidAttributeValue"),
            (json_call("AmazonSQS.CreateQueue", {"QueueName": self.name, "Attributes": {"VisibilityTimeout": "30"}}), 400,
             "QueueNameExists", "QueueAlreadyExists"),
            (json_call("AmazonSQS.SetQueueAttributes", {"QueueUrl": self.url, "Attributes": {"FifoQueue": "true"}}), 400,
             "InvalidAttributeName", "InvalidAttributeName"),
            (json_call("AmazonSQS.DeleteQueue", {"QueueUrl": "no-slashes-here"}), 400,
             "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"),
            (json_call("AmazonSQS.DeleteMessageBatch", {"QueueUrl": self.url, "Entries": "x"}), 400,
             "SerializationException", "SerializationException"),
            (json_call("AmazonSQS.DeleteMessageBatch", {"QueueUrl": self.url, "Entries": []}), 400,
             "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest"),
            (json_call("AmazonSQS.ChangeMessageVisibility", {"QueueUrl": self.url, "ReceiptHandle": "x" * 58,
                                                            "VisibilityTimeout": 5}), 400,
             "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid"),
            (post(b"Action=NoSuch&Version=2012-11-05", {"Content-Type": "application/x-www-form-urlencoded"}), 400, None, None),
        ]
        for response, status, type_name, query_code in cases:
            with self.subTest(body=response[2][:120]):
                if type_name is None:
                    self.assertEqual(response[0], status)
                    self.assertIn(b"<Code>InvalidAction</Code>", response[2])
                else:
                    self.expect_error(response, status, type_name, query_code)
        self.assertEqual(self.snapshot(), before)

    def test_query_protocol_errors_are_xml(self):
        code, _, body = post(b"Action=SendMessage&Version=2012-11-05", {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 400)
        self.assertIn(b"<Code>MissingParameter</Code>", body)
        code, _, body = post(b"Action=SendMessage&QueueUrl=%ZZ", {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 400)
        self.assertIn(b"<ErrorResponse", body)
        code, _, body = post(b"Version=2012-11-05", {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 400)
        self.assertIn(b"<Code>MissingParameter</Code>", body)

    def test_mutated_requests_never_get_a_5xx_and_change_nothing(self):
        before = self.snapshot()
        generator = random.Random(20261201)
        seeds = [
            ("AmazonSQS.SendMessage", {"QueueUrl": self.url + "-x", "MessageBody": "m", "DelaySeconds": 1,
                                       "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"}}}),
            ("AmazonSQS.SendMessageBatch", {"QueueUrl": self.url + "-x", "Entries": [{"Id": "1", "MessageBody": "m"}]}),
            ("AmazonSQS.CreateQueue", {"QueueName": "not a name!", "Attributes": {"NoSuchAttribute": "3"}, "tags": {"a": "b"}}),
            ("AmazonSQS.SetQueueAttributes", {"QueueUrl": self.url + "-x", "Attributes": {"VisibilityTimeout": "999999"}}),
            ("AmazonSQS.ReceiveMessage", {"QueueUrl": self.url + "-x", "MaxNumberOfMessages": 5}),
        ]
        for round_number in range(400):
            target, body = generator.choice(seeds)
            data = bytearray(json.dumps(body).encode())
            for _ in range(generator.randint(1, 4)):
                position = generator.randrange(len(data))
                operation = generator.random()
                if operation < 0.4:
                    data[position] = generator.randrange(256)
                elif operation < 0.7:
                    del data[position]
                else:
                    data.insert(position, generator.choice(b'{}[]",:0\\'))
            if generator.random() < 0.1:
                target = target[:-1]
            code, _, response = json_call(target, bytes(data))
            self.assertLess(code, 500, (round_number, bytes(data), response))
        self.assertEqual(self.snapshot(), before)


if __name__ == "__main__":
    main()
