"""Current boto3 (AWS JSON 1.0 protocol) and awscli against ternd's SQS endpoint: every action,
long polling, dead-lettering and redrive, FIFO, batch partial failures, every error class, MD5s.
"""
import base64
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.request

from botocore.exceptions import ClientError

from common import ENDPOINT, client, main, md5_of_attributes, md5_of_body, unique, wait_until

HTTP_API = os.environ.get("TERN_HTTP")


class QueueTests(unittest.TestCase):
    def setUp(self):
        self.sqs = client()

    def test_create_get_list_delete(self):
        prefix = unique("life")
        url = self.sqs.create_queue(QueueName=prefix + "-a")["QueueUrl"]
        self.assertEqual(url, ENDPOINT + "/000000000000/" + prefix + "-a")
        self.sqs.create_queue(QueueName=prefix + "-b")
        self.sqs.create_queue(QueueName=prefix + "-c")
        self.assertEqual(self.sqs.get_queue_url(QueueName=prefix + "-a")["QueueUrl"], url)
        listed = self.sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
        self.assertEqual([u.rsplit("/", 1)[1] for u in listed], [prefix + "-a", prefix + "-b", prefix + "-c"])
        # Pagination with MaxResults / NextToken.
        page1 = self.sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
        self.assertEqual(len(page1["QueueUrls"]), 2)
        page2 = self.sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=page1["NextToken"])
        self.assertEqual([u.rsplit("/", 1)[1] for u in page2["QueueUrls"]], [prefix + "-c"])
        self.assertNotIn("NextToken", page2)
        paginated = [u for page in self.sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix, MaxResults=1)
                     for u in page.get("QueueUrls", [])]
        self.assertEqual(len(paginated), 3)
        self.sqs.delete_queue(QueueUrl=url)
        with self.assertRaises(self.sqs.exceptions.QueueDoesNotExist) as caught:
            self.sqs.get_queue_url(QueueName=prefix + "-a")
        self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.NonExistentQueue")
        # SQS: 60 s before the name can be used again.
        with self.assertRaises(self.sqs.exceptions.QueueDeletedRecently) as caught:
            self.sqs.create_queue(QueueName=prefix + "-a")
        self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.QueueDeletedRecently")

    def test_create_is_idempotent_for_equal_attributes_and_refuses_different_ones(self):
        name = unique("idem")
        url = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
        self.assertEqual(self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"], url)
        self.assertEqual(self.sqs.create_queue(QueueName=name)["QueueUrl"], url)
        with self.assertRaises(self.sqs.exceptions.QueueNameExists) as caught:
            self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
        self.assertEqual(caught.exception.response["Error"]["Code"], "QueueAlreadyExists")

    def test_attributes_all_and_set(self):
        name = unique("attrs")
        url = self.sqs.create_queue(QueueName=name, Attributes={
            "DelaySeconds": "2", "MaximumMessageSize": "2048", "MessageRetentionPeriod": "3600",
            "ReceiveMessageWaitTimeSeconds": "1", "VisibilityTimeout": "40",
        })["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for key in ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
                    "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn", "DelaySeconds", "MaximumMessageSize",
                    "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout"]:
            self.assertIn(key, attributes)
        self.assertEqual(attributes["QueueArn"], "arn:aws:sqs:us-east-1:000000000000:" + name)
        self.assertEqual((attributes["DelaySeconds"], attributes["MaximumMessageSize"], attributes["MessageRetentionPeriod"],
                          attributes["ReceiveMessageWaitTimeSeconds"], attributes["VisibilityTimeout"]),
                         ("2", "2048", "3600", "1", "40"))
        self.assertLess(abs(int(attributes["CreatedTimestamp"]) - time.time()), 120)
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "50", "DelaySeconds": "0"})
        some = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "DelaySeconds"])["Attributes"]
        self.assertEqual(some, {"VisibilityTimeout": "50", "DelaySeconds": "0"})
        self.sqs.send_message(QueueUrl=url, MessageBody="a")
        self.sqs.send_message(QueueUrl=url, MessageBody="b", DelaySeconds=60)
        self.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        counts = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        self.assertEqual((counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"],
                          counts["ApproximateNumberOfMessagesDelayed"]), ("0", "1", "1"))
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeName):
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeName):
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"NoSuchAttribute": "1"})
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeValue):
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "43201"})
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeValue):
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "1023"})
        # Nothing changed by the rejected calls.
        self.assertEqual(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"],
                         {"VisibilityTimeout": "50"})

    def test_same_queue_is_visible_over_the_tern_http_api(self):
        if not HTTP_API:
            self.skipTest("TERN_HTTP not set")
        name = unique("both")
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.sqs.send_message(QueueUrl=url, MessageBody="over sqs")
        with urllib.request.urlopen(f"{HTTP_API}/queues/{name}/messages?batch_size=1&auto_ack=true") as response:
            messages = json.load(response)["messages"]
        self.assertEqual([m["body"] for m in messages], ["over sqs"])

    def test_tags(self):
        url = self.sqs.create_queue(QueueName=unique("tags"), tags={"team": "orders", "env": "test"})["QueueUrl"]
        self.assertEqual(self.sqs.list_queue_tags(QueueUrl=url)["Tags"], {"team": "orders", "env": "test"})
        self.sqs.tag_queue(QueueUrl=url, Tags={"env": "prod", "cost": "42"})
        self.assertEqual(self.sqs.list_queue_tags(QueueUrl=url)["Tags"], {"team": "orders", "env": "prod", "cost": "42"})
        self.sqs.untag_queue(QueueUrl=url, TagKeys=["team", "absent"])
        self.assertEqual(self.sqs.list_queue_tags(QueueUrl=url)["Tags"], {"env": "prod", "cost": "42"})
        with self.assertRaises(ClientError) as caught:
            self.sqs.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(49)})
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue")
        self.assertEqual(len(self.sqs.list_queue_tags(QueueUrl=url)["Tags"]), 2)

    def test_purge_and_purge_in_progress(self):
        url = self.sqs.create_queue(QueueName=unique("purge"))["QueueUrl"]
        self.sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(5)])
        self.sqs.purge_queue(QueueUrl=url)
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10))
        with self.assertRaises(self.sqs.exceptions.PurgeQueueInProgress) as caught:
            self.sqs.purge_queue(QueueUrl=url)
        self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.PurgeQueueInProgress")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    def test_permissions_are_stored_in_the_policy(self):
        url = self.sqs.create_queue(QueueName=unique("perm"))["QueueUrl"]
        self.sqs.add_permission(QueueUrl=url, Label="ops", AWSAccountIds=["111122223333"], Actions=["SendMessage"])
        policy = json.loads(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
        self.assertEqual([s["Sid"] for s in policy["Statement"]], ["ops"])
        self.assertEqual(policy["Statement"][0]["Action"], ["SQS:SendMessage"])
        with self.assertRaises(ClientError) as caught:
            self.sqs.add_permission(QueueUrl=url, Label="ops", AWSAccountIds=["111122223333"], Actions=["SendMessage"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue")
        with self.assertRaises(self.sqs.exceptions.OverLimit):
            self.sqs.add_permission(QueueUrl=url, Label="many", AWSAccountIds=["111122223333"],
                                    Actions=["SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility",
                                             "GetQueueAttributes", "GetQueueUrl", "ListDeadLetterSourceQueues", "PurgeQueue"])
        self.sqs.remove_permission(QueueUrl=url, Label="ops")
        self.assertNotIn("Policy", self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}))
        with self.assertRaises(ClientError):
            self.sqs.remove_permission(QueueUrl=url, Label="ops")


class MessageTests(unittest.TestCase):
    def setUp(self):
        self.sqs = client()
        self.url = self.sqs.create_queue(QueueName=unique("msg"))["QueueUrl"]

    def test_send_receive_with_every_attribute_type_and_md5s(self):
        body = "héllo, wörld ✓ \U0001F600"
        attributes = {
            "color": {"DataType": "String", "StringValue": "blue"},
            "count": {"DataType": "Number", "StringValue": "42"},
            "price": {"DataType": "Number.float", "StringValue": "-3.25e2"},
            "blob": {"DataType": "Binary", "BinaryValue": bytes([0, 1, 2, 250, 255])},
            "image": {"DataType": "Binary.png", "BinaryValue": b"\x89PNG"},
            "note.x": {"DataType": "String.custom", "StringValue": "ünïcode"},
        }
        sent = self.sqs.send_message(QueueUrl=self.url, MessageBody=body, MessageAttributes=attributes,
                                     MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String",
                                                                                 "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}})
        self.assertEqual(sent["MD5OfMessageBody"], md5_of_body(body))
        self.assertEqual(sent["MD5OfMessageAttributes"], md5_of_attributes(attributes))
        self.assertIn("MD5OfMessageSystemAttributes", sent)
        self.assertRegex(sent["MessageId"], r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        received = self.sqs.receive_message(QueueUrl=self.url, MessageAttributeNames=["All"],
                                            MessageSystemAttributeNames=["All"])["Messages"]
        self.assertEqual(len(received), 1)
        message = received[0]
        self.assertEqual(message["Body"], body)
        self.assertEqual(message["MessageId"], sent["MessageId"])
        self.assertEqual(message["MD5OfBody"], md5_of_body(body))
        self.assertEqual(message["MessageAttributes"], attributes)
        self.assertEqual(message["MD5OfMessageAttributes"], md5_of_attributes(attributes))
        system = message["Attributes"]
        self.assertEqual(system["ApproximateReceiveCount"], "1")
        self.assertEqual(system["AWSTraceHeader"], "Root=1-5759e988-bd862e3fe1be46a994272793")
        self.assertIn("SenderId", system)
        self.assertLess(abs(int(system["SentTimestamp"]) / 1000 - time.time()), 120)
        self.assertGreaterEqual(int(system["ApproximateFirstReceiveTimestamp"]), int(system["SentTimestamp"]))

    def test_message_attribute_name_filters(self):
        attributes = {"a.one": {"DataType": "String", "StringValue": "1"}, "a.two": {"DataType": "String", "StringValue": "2"},
                      "b": {"DataType": "String", "StringValue": "3"}}
        self.sqs.send_message(QueueUrl=self.url, MessageBody="x", MessageAttributes=attributes)
        message = self.sqs.receive_message(QueueUrl=self.url, MessageAttributeNames=["a.*"], VisibilityTimeout=0)["Messages"][0]
        self.assertEqual(set(message["MessageAttributes"]), {"a.one", "a.two"})
        self.assertEqual(message["MD5OfMessageAttributes"], md5_of_attributes({k: attributes[k] for k in ["a.one", "a.two"]}))
        message = self.sqs.receive_message(QueueUrl=self.url, MessageAttributeNames=["b"], VisibilityTimeout=0)["Messages"][0]
        self.assertEqual(set(message["MessageAttributes"]), {"b"})
        message = self.sqs.receive_message(QueueUrl=self.url)["Messages"][0]
        self.assertNotIn("MessageAttributes", message)
        self.assertNotIn("Attributes", message)

    def test_batch_send_partial_failure_and_batch_errors(self):
        result = self.sqs.send_message_batch(QueueUrl=self.url, Entries=[
            {"Id": "ok1", "MessageBody": "one"},
            {"Id": "bad", "MessageBody": "two", "DelaySeconds": 901},
            {"Id": "ok2", "MessageBody": "three", "MessageAttributes": {"k": {"DataType": "Number", "StringValue": "7"}}},
            {"Id": "badchar", "MessageBody": "bad \x01 char"},
        ])
        self.assertEqual(sorted(e["Id"] for e in result["Successful"]), ["ok1", "ok2"])
        failed = {e["Id"]: e for e in result["Failed"]}
        self.assertEqual(set(failed), {"bad", "badchar"})
        self.assertEqual(failed["bad"]["Code"], "InvalidParameterValue")
        self.assertEqual(failed["badchar"]["Code"], "InvalidMessageContents")
        self.assertTrue(failed["bad"]["SenderFault"])
        for entry in result["Successful"]:
            self.assertEqual(entry["MD5OfMessageBody"], md5_of_body({"ok1": "one", "ok2": "three"}[entry["Id"]]))
        bodies = sorted(m["Body"] for m in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)["Messages"])
        self.assertEqual(bodies, ["one", "three"])
        with self.assertRaises(self.sqs.exceptions.BatchEntryIdsNotDistinct):
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}])
        with self.assertRaises(self.sqs.exceptions.TooManyEntriesInBatchRequest):
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(11)])
        with self.assertRaises(self.sqs.exceptions.EmptyBatchRequest):
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=[])
        with self.assertRaises(self.sqs.exceptions.InvalidBatchEntryId):
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=[{"Id": "not valid!", "MessageBody": "m"}])
        with self.assertRaises(self.sqs.exceptions.BatchRequestTooLong):
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=[{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)])
        # None of the rejected batches stored anything.
        counts = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]), 2)

    def test_size_limits_exactly(self):
        url = self.sqs.create_queue(QueueName=unique("size"), Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
        self.sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)
        with self.assertRaises(ClientError) as caught:
            self.sqs.send_message(QueueUrl=url, MessageBody="x" * 1025)
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue")
        # Attributes count towards the size: name + type + value.
        with self.assertRaises(ClientError):
            self.sqs.send_message(QueueUrl=url, MessageBody="x" * 1000,
                                  MessageAttributes={"n": {"DataType": "String", "StringValue": "y" * 18}})
        self.sqs.send_message(QueueUrl=url, MessageBody="x" * 1000,
                              MessageAttributes={"n": {"DataType": "String", "StringValue": "y" * 17}})

    def test_long_polling_returns_when_a_message_arrives(self):
        result = {}

        def receive():
            started = time.monotonic()
            result["response"] = self.sqs.receive_message(QueueUrl=self.url, WaitTimeSeconds=20)
            result["elapsed"] = time.monotonic() - started

        thread = threading.Thread(target=receive)
        thread.start()
        time.sleep(1.0)
        self.sqs.send_message(QueueUrl=self.url, MessageBody="wake up")
        thread.join(30)
        self.assertEqual([m["Body"] for m in result["response"]["Messages"]], ["wake up"])
        self.assertLess(result["elapsed"], 18, "the long poll returned on the send, not at its 20 s limit")

    def test_delete_change_visibility_and_their_batches(self):
        self.sqs.send_message_batch(QueueUrl=self.url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(4)])
        messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
        self.assertEqual(len(messages), 4)
        handles = [m["ReceiptHandle"] for m in messages]
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=handles[0])
        deleted = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
            {"Id": "a", "ReceiptHandle": handles[1]}, {"Id": "bad", "ReceiptHandle": "garbage"}])
        self.assertEqual([e["Id"] for e in deleted["Successful"]], ["a"])
        self.assertEqual([(e["Id"], e["Code"]) for e in deleted["Failed"]], [("bad", "ReceiptHandleIsInvalid")])
        changed = self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
            {"Id": "c", "ReceiptHandle": handles[2], "VisibilityTimeout": 0},
            {"Id": "bad", "ReceiptHandle": handles[2], "VisibilityTimeout": 43201}])
        self.assertEqual([e["Id"] for e in changed["Successful"]], ["c"])
        self.assertEqual(changed["Failed"][0]["Code"], "InvalidParameterValue")
        again = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)["Messages"]
        self.assertEqual([m["Body"] for m in again], [messages[2]["Body"]])
        self.assertEqual(self.sqs.receive_message(QueueUrl=self.url, AttributeNames=["ApproximateReceiveCount"],
                                                  VisibilityTimeout=0).get("Messages"), None)
        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0)
        third = self.sqs.receive_message(QueueUrl=self.url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        self.assertEqual(third["Attributes"]["ApproximateReceiveCount"], "3")
        with self.assertRaises(self.sqs.exceptions.MessageNotInflight) as caught:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=10)
        self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.MessageNotInflight")
        with self.assertRaises(self.sqs.exceptions.ReceiptHandleIsInvalid):
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle="not-a-handle")
        # A superseded handle: SQS answers success and deletes nothing (standard queues).
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=again[0]["ReceiptHandle"])
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=third["ReceiptHandle"])
        self.assertEqual(self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])["Attributes"]
                         ["ApproximateNumberOfMessagesNotVisible"], "1")

    def test_receive_parameter_ranges(self):
        for parameters in [{"MaxNumberOfMessages": 11}, {"MaxNumberOfMessages": 0}, {"WaitTimeSeconds": 21},
                           {"VisibilityTimeout": 43201}]:
            with self.assertRaises(ClientError) as caught:
                self.sqs.receive_message(QueueUrl=self.url, **parameters)
            self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue", parameters)

    def test_tern_priority_attribute_orders_delivery(self):
        for body, priority in [("low", "0"), ("high", "9"), ("mid", "5")]:
            self.sqs.send_message(QueueUrl=self.url, MessageBody=body,
                                  MessageAttributes={"tern.priority": {"DataType": "Number", "StringValue": priority}})
        self.sqs.send_message(QueueUrl=self.url, MessageBody="none")
        bodies = [m["Body"] for m in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)["Messages"]]
        self.assertEqual(bodies, ["high", "mid", "low", "none"])
        with self.assertRaises(ClientError):
            self.sqs.send_message(QueueUrl=self.url, MessageBody="x",
                                  MessageAttributes={"tern.priority": {"DataType": "Number", "StringValue": "10"}})

    def test_invalid_message_attributes(self):
        cases = [
            {"AWS.reserved": {"DataType": "String", "StringValue": "x"}},
            {"bad name": {"DataType": "String", "StringValue": "x"}},
            {"n": {"DataType": "Integer", "StringValue": "1"}},
            {"n": {"DataType": "Number", "StringValue": "one"}},
            {"n": {"DataType": "String", "StringValue": ""}},
            {f"k{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)},
        ]
        for attributes in cases:
            with self.assertRaises(ClientError) as caught:
                self.sqs.send_message(QueueUrl=self.url, MessageBody="x", MessageAttributes=attributes)
            self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue", attributes)
        self.assertEqual(self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
                         ["Attributes"]["ApproximateNumberOfMessages"], "0")


class DeadLetterTests(unittest.TestCase):
    def setUp(self):
        self.sqs = client()

    def test_redrive_policy_fills_the_dlq_and_a_move_task_moves_it_back(self):
        dlq = self.sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        source = self.sqs.create_queue(QueueName=unique("src"), Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}),
            "VisibilityTimeout": "1"})["QueueUrl"]
        policy = json.loads(self.sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])
                            ["Attributes"]["RedrivePolicy"])
        self.assertEqual(policy, {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
        self.assertEqual(self.sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"], [source])
        self.sqs.send_message_batch(QueueUrl=source, Entries=[
            {"Id": str(i), "MessageBody": f"m{i}", "MessageAttributes": {"i": {"DataType": "Number", "StringValue": str(i)}}}
            for i in range(3)])
        self.assertEqual(len(self.sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10)["Messages"]), 3)
        wait_until(lambda: self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                   ["Attributes"]["ApproximateNumberOfMessages"] == "3")
        with self.assertRaises(self.sqs.exceptions.ResourceNotFoundException):
            self.sqs.start_message_move_task(SourceArn=dlq_arn.replace(":dlq", ":nope"))
        handle = self.sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=2)["TaskHandle"]
        with self.assertRaises(self.sqs.exceptions.UnsupportedOperation):
            self.sqs.start_message_move_task(SourceArn=dlq_arn)
        tasks = wait_until(lambda: [t for t in self.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
                                    if t["Status"] == "COMPLETED"], timeout=30)
        self.assertEqual(tasks[0]["ApproximateNumberOfMessagesMoved"], 3)
        self.assertEqual(tasks[0]["MaxNumberOfMessagesPerSecond"], 2)
        moved = self.sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                         VisibilityTimeout=30)["Messages"]
        self.assertEqual(sorted(m["Body"] for m in moved), ["m0", "m1", "m2"])
        self.assertEqual(sorted(m["MessageAttributes"]["i"]["StringValue"] for m in moved), ["0", "1", "2"])
        with self.assertRaises(self.sqs.exceptions.UnsupportedOperation):
            self.sqs.cancel_message_move_task(TaskHandle=handle)
        with self.assertRaises(self.sqs.exceptions.ResourceNotFoundException):
            self.sqs.cancel_message_move_task(TaskHandle="bm90LWEtdGFzaw==")

    def test_move_task_is_rate_limited_and_cancellable(self):
        dlq = self.sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        source = self.sqs.create_queue(QueueName=unique("src"), Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})})["QueueUrl"]
        for start in range(0, 30, 10):
            self.sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(start, start + 10)])
        started = time.monotonic()
        handle = self.sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
        time.sleep(1.5)
        cancelled = self.sqs.cancel_message_move_task(TaskHandle=handle)
        elapsed = time.monotonic() - started
        # At most one message per started second (the bound holds however slow the machine is).
        self.assertLessEqual(cancelled["ApproximateNumberOfMessagesMoved"], int(elapsed) + 1)
        task = wait_until(lambda: [t for t in self.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
                                   if t["Status"] == "CANCELLED"])[0]
        self.assertLess(task["ApproximateNumberOfMessagesMoved"], 30)
        self.assertEqual(task["ApproximateNumberOfMessagesToMove"], 30)

    def test_invalid_redrive_policies(self):
        source = unique("src")
        for policy in ["not json", json.dumps({"maxReceiveCount": 1}),
                       json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:absent", "maxReceiveCount": 1}),
                       json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:x", "maxReceiveCount": 0})]:
            with self.assertRaises(ClientError) as caught:
                self.sqs.create_queue(QueueName=source, Attributes={"RedrivePolicy": policy})
            self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue", policy)
        with self.assertRaises(self.sqs.exceptions.QueueDoesNotExist):
            self.sqs.get_queue_url(QueueName=source)


class FifoTests(unittest.TestCase):
    def setUp(self):
        self.sqs = client()

    def test_ordering_deduplication_and_sequence_numbers(self):
        url = self.sqs.create_queue(QueueName=unique("order") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        sequences = []
        for i in range(5):
            sent = self.sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="A", MessageDeduplicationId=f"a{i}")
            sequences.append(int(sent["SequenceNumber"]))
        self.assertEqual(sequences, sorted(sequences))
        self.assertEqual(len(set(sequences)), 5)
        first = self.sqs.send_message(QueueUrl=url, MessageBody="b0", MessageGroupId="B", MessageDeduplicationId="same")
        duplicate = self.sqs.send_message(QueueUrl=url, MessageBody="b-dup", MessageGroupId="B", MessageDeduplicationId="same")
        self.assertEqual(duplicate["MessageId"], first["MessageId"])
        received = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        bodies = [m["Body"] for m in received]
        self.assertEqual([b for b in bodies if b.startswith("a")], ["a0", "a1", "a2", "a3", "a4"])
        self.assertEqual([b for b in bodies if b.startswith("b")], ["b0"])
        self.assertEqual(received[0]["Attributes"]["MessageGroupId"], "A")
        self.assertEqual(received[0]["Attributes"]["MessageDeduplicationId"], "a0")
        self.assertIn("SequenceNumber", received[0]["Attributes"])
        # While group A is in flight nothing more of A is delivered.
        self.sqs.send_message(QueueUrl=url, MessageBody="a5", MessageGroupId="A", MessageDeduplicationId="a5")
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10))
        self.sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                              for i, m in enumerate(received)])
        self.assertEqual([m["Body"] for m in self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]], ["a5"])

    def test_content_based_deduplication_and_fifo_rules(self):
        url = self.sqs.create_queue(QueueName=unique("cbd") + ".fifo",
                                    Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        first = self.sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
        second = self.sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
        self.assertEqual(first["MessageId"], second["MessageId"])
        with self.assertRaises(ClientError) as caught:
            self.sqs.send_message(QueueUrl=url, MessageBody="no group")
        self.assertEqual(caught.exception.response["Error"]["Code"], "MissingParameter")
        with self.assertRaises(ClientError) as caught:
            self.sqs.send_message(QueueUrl=url, MessageBody="delayed", MessageGroupId="g", DelaySeconds=5)
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue")
        plain = self.sqs.create_queue(QueueName=unique("nocbd") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        with self.assertRaises(ClientError) as caught:
            self.sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue")
        with self.assertRaises(ClientError) as caught:
            self.sqs.create_queue(QueueName=unique("nofifo") + ".fifo")
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameterValue")
        standard = self.sqs.create_queue(QueueName=unique("std"))["QueueUrl"]
        with self.assertRaises(ClientError):
            self.sqs.send_message(QueueUrl=standard, MessageBody="x", MessageDeduplicationId="d")
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        self.assertEqual((attributes["FifoQueue"], attributes["ContentBasedDeduplication"], attributes["DeduplicationScope"],
                          attributes["FifoThroughputLimit"]), ("true", "true", "queue", "perQueue"))

    def test_deduplication_scope_message_group(self):
        url = self.sqs.create_queue(QueueName=unique("scope") + ".fifo", Attributes={
            "FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})["QueueUrl"]
        a = self.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="A", MessageDeduplicationId="d")
        b = self.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="B", MessageDeduplicationId="d")
        again = self.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="A", MessageDeduplicationId="d")
        self.assertNotEqual(a["MessageId"], b["MessageId"])
        self.assertEqual(a["MessageId"], again["MessageId"])
        received = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageDeduplicationId"])
        self.assertEqual([m["Attributes"]["MessageDeduplicationId"] for m in received["Messages"]], ["d", "d"])


class ErrorTests(unittest.TestCase):
    def setUp(self):
        self.sqs = client()

    def test_unknown_queue_on_every_queue_action(self):
        url = ENDPOINT + "/000000000000/" + unique("absent")
        calls = [
            lambda: self.sqs.send_message(QueueUrl=url, MessageBody="x"),
            lambda: self.sqs.receive_message(QueueUrl=url),
            lambda: self.sqs.get_queue_attributes(QueueUrl=url),
            lambda: self.sqs.delete_queue(QueueUrl=url),
            lambda: self.sqs.purge_queue(QueueUrl=url),
            lambda: self.sqs.list_queue_tags(QueueUrl=url),
            lambda: self.sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}]),
        ]
        for call in calls:
            with self.assertRaises(self.sqs.exceptions.QueueDoesNotExist) as caught:
                call()
            self.assertEqual(caught.exception.response["Error"]["Code"], "AWS.SimpleQueueService.NonExistentQueue")
            self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        other_account = ENDPOINT + "/123456789012/" + unique("absent")
        with self.assertRaises(self.sqs.exceptions.QueueDoesNotExist):
            self.sqs.get_queue_attributes(QueueUrl=other_account)

    def test_invalid_queue_names(self):
        for name in ["", "has space", "x" * 81, "dot.name", "ends.fifo"]:
            with self.assertRaises(ClientError) as caught:
                self.sqs.create_queue(QueueName=name)
            self.assertIn(caught.exception.response["Error"]["Code"], ["InvalidParameterValue", "MissingParameter"], name)

    def test_message_body_rules(self):
        url = self.sqs.create_queue(QueueName=unique("body"))["QueueUrl"]
        with self.assertRaises(self.sqs.exceptions.InvalidMessageContents):
            self.sqs.send_message(QueueUrl=url, MessageBody="bell \x07")
        with self.assertRaises(ClientError) as caught:
            self.sqs.send_message(QueueUrl=url, MessageBody="")
        self.assertIn(caught.exception.response["Error"]["Code"], ["InvalidParameterValue", "MissingParameter"])


class AwsCliTests(unittest.TestCase):
    def aws(self, *arguments):
        environment = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ.get("SQS_ACCESS_KEY", "test"),
                           AWS_SECRET_ACCESS_KEY=os.environ.get("SQS_SECRET_KEY", "test"), AWS_DEFAULT_REGION="us-east-1")
        aws = os.path.join(os.path.dirname(os.path.realpath(os.sys.executable)), "aws")
        if not os.path.exists(aws):
            aws = os.path.join(os.path.dirname(os.sys.executable), "aws")
        completed = subprocess.run([os.sys.executable, aws, "--endpoint-url", ENDPOINT, "--output", "json", "sqs", *arguments],
                                   env=environment, capture_output=True, text=True, timeout=120)
        return completed

    def test_awscli_core_commands(self):
        name = unique("cli")
        created = self.aws("create-queue", "--queue-name", name)
        self.assertEqual(created.returncode, 0, created.stderr)
        url = json.loads(created.stdout)["QueueUrl"]
        sent = self.aws("send-message", "--queue-url", url, "--message-body", "from the cli",
                        "--message-attributes", '{"k": {"DataType": "String", "StringValue": "v"}}')
        self.assertEqual(sent.returncode, 0, sent.stderr)
        self.assertEqual(json.loads(sent.stdout)["MD5OfMessageBody"], md5_of_body("from the cli"))
        received = self.aws("receive-message", "--queue-url", url, "--message-attribute-names", "All", "--wait-time-seconds", "1")
        self.assertEqual(received.returncode, 0, received.stderr)
        message = json.loads(received.stdout)["Messages"][0]
        self.assertEqual(message["Body"], "from the cli")
        self.assertEqual(message["MessageAttributes"]["k"]["StringValue"], "v")
        deleted = self.aws("delete-message", "--queue-url", url, "--receipt-handle", message["ReceiptHandle"])
        self.assertEqual(deleted.returncode, 0, deleted.stderr)
        attributes = self.aws("get-queue-attributes", "--queue-url", url, "--attribute-names", "All")
        self.assertEqual(json.loads(attributes.stdout)["Attributes"]["ApproximateNumberOfMessages"], "0")
        missing = self.aws("get-queue-url", "--queue-name", unique("absent"))
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("NonExistentQueue", missing.stderr)
        listed = self.aws("list-queues", "--queue-name-prefix", name)
        self.assertEqual(json.loads(listed.stdout)["QueueUrls"], [url])


if __name__ == "__main__":
    main()
