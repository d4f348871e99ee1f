"""SigV4 with authentication configured: a valid signature by a configured access key works;
unknown keys, wrong secrets, skewed clocks and missing permissions get SQS's errors and change
nothing. Expects ternd configured with the tokens named below (see SQSClientTests.swift).
"""
import datetime
import hashlib
import hmac
import unittest
import urllib.error
import urllib.request

from botocore.exceptions import ClientError

from common import ENDPOINT, client, main, unique

ADMIN = ("operator", "operator-secret-0123456789")
ORDERS = ("orders-service", "orders-secret-0123456789")


class AuthTests(unittest.TestCase):
    def setUp(self):
        self.admin = client(*ADMIN)

    def test_valid_signature_by_a_configured_key(self):
        url = self.admin.create_queue(QueueName="orders-" + unique("a"))["QueueUrl"]
        self.admin.send_message(QueueUrl=url, MessageBody="signed")
        message = self.admin.receive_message(QueueUrl=url, AttributeNames=["SenderId"])["Messages"][0]
        self.assertEqual(message["Attributes"]["SenderId"], ADMIN[0])

    def test_unknown_key_wrong_secret_and_missing_signature(self):
        with self.assertRaises(ClientError) as caught:
            client("nobody", "whatever-secret-000").list_queues()
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidClientTokenId")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        with self.assertRaises(ClientError) as caught:
            client(ADMIN[0], "the-wrong-secret-000").list_queues()
        self.assertEqual(caught.exception.response["Error"]["Code"], "SignatureDoesNotMatch")
        request = urllib.request.Request(ENDPOINT + "/", data=b"{}", method="POST", headers={
            "X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"})
        with self.assertRaises(urllib.error.HTTPError) as unsigned:
            urllib.request.urlopen(request, timeout=30)
        self.assertEqual(unsigned.exception.code, 403)
        self.assertIn("MissingAuthenticationToken", unsigned.exception.headers["x-amzn-query-error"])

    def signed(self, body: bytes, target: str, when: datetime.datetime, tamper=None):
        """Signs a JSON-protocol request as of `when` with an independent SigV4 implementation."""
        host = ENDPOINT.split("://", 1)[1].rstrip("/")
        amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        headers = {"content-type": "application/x-amz-json-1.0", "host": host, "x-amz-date": amz_date, "x-amz-target": target}
        signed_headers = ";".join(sorted(headers))
        canonical = "\n".join(["POST", "/", "", *[f"{k}:{headers[k]}" for k in sorted(headers)], "", signed_headers,
                               hashlib.sha256(body).hexdigest()])
        scope = f"{date}/us-east-1/sqs/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + ADMIN[1]).encode()
        for part in [date, "us-east-1", "sqs", "aws4_request"]:
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={ADMIN[0]}/{scope}, SignedHeaders={signed_headers}, "
                                    f"Signature={signature}")
        if tamper:
            body = tamper(body)
        request = urllib.request.Request(ENDPOINT + "/", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}

    def test_clock_skew_window_is_fifteen_minutes(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        status, _ = self.signed(b"{}", "AmazonSQS.ListQueues", now - datetime.timedelta(minutes=10))
        self.assertEqual(status, 200)
        status, headers = self.signed(b"{}", "AmazonSQS.ListQueues", now - datetime.timedelta(minutes=20))
        self.assertEqual(status, 403)
        self.assertTrue(headers["x-amzn-query-error"].startswith("SignatureDoesNotMatch"))
        status, headers = self.signed(b"{}", "AmazonSQS.ListQueues", now + datetime.timedelta(minutes=20))
        self.assertEqual(status, 403)

    def test_a_tampered_body_fails_and_changes_nothing(self):
        name = "orders-" + unique("t")
        body = ('{"QueueName": "%s"}' % name).encode()
        status, headers = self.signed(body, "AmazonSQS.CreateQueue", datetime.datetime.now(datetime.timezone.utc),
                                      tamper=lambda b: b.replace(b"orders-", b"orderz-"))
        self.assertEqual(status, 403)
        self.assertTrue(headers["x-amzn-query-error"].startswith("SignatureDoesNotMatch"))
        self.assertNotIn("QueueUrls", self.admin.list_queues(QueueNamePrefix="orderz-"))

    def test_permissions_map_onto_tern_tokens(self):
        orders = client(*ORDERS)
        url = self.admin.create_queue(QueueName="orders-" + unique("p"))["QueueUrl"]
        other = self.admin.create_queue(QueueName="billing-" + unique("p"))["QueueUrl"]
        orders.send_message(QueueUrl=url, MessageBody="allowed")
        message = orders.receive_message(QueueUrl=url)["Messages"][0]
        orders.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        for call in [lambda: orders.send_message(QueueUrl=other, MessageBody="denied"),
                     lambda: orders.receive_message(QueueUrl=other),
                     lambda: orders.create_queue(QueueName="orders-" + unique("denied")),
                     lambda: orders.purge_queue(QueueUrl=url)]:
            with self.assertRaises(ClientError) as caught:
                call()
            self.assertEqual(caught.exception.response["Error"]["Code"], "AccessDenied")
            self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(self.admin.get_queue_attributes(QueueUrl=other, AttributeNames=["ApproximateNumberOfMessages"])
                         ["Attributes"]["ApproximateNumberOfMessages"], "0")


if __name__ == "__main__":
    main()
