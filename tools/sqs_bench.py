"""SQS throughput with boto3, 10 messages per call, against ternd and moto_server in the same run.

  python tools/sqs_bench.py --tern http://127.0.0.1:9324 [--messages 20000] [--threads 4] [--body-bytes 256]

Starts moto_server itself (from the same virtual environment) on a free port. Reports, for each
server: SendMessageBatch messages/s, and ReceiveMessage (10) + DeleteMessageBatch messages/s.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
import botocore.config


def make_client(endpoint):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=botocore.config.Config(retries={"max_attempts": 1}, max_pool_connections=64))


def run_threads(threads, work):
    errors = []

    def wrapper(index):
        try:
            work(index)
        except Exception as error:  # reported after the run
            errors.append(error)

    started = time.perf_counter()
    pool = [threading.Thread(target=wrapper, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def bench(endpoint, messages, threads, body_bytes):
    sqs = make_client(endpoint)
    url = sqs.create_queue(QueueName="bench-" + uuid.uuid4().hex[:8])["QueueUrl"]
    body = "x" * body_bytes
    calls = messages // 10
    per_thread = calls // threads
    clients = [make_client(endpoint) for _ in range(threads)]

    def send(index):
        for _ in range(per_thread):
            clients[index].send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body} for i in range(10)])

    send_seconds = run_threads(threads, send)
    sent = per_thread * threads * 10
    received = [0] * threads

    def consume(index):
        client = clients[index]
        empty = 0
        while empty < 2:
            response = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=120)
            batch = response.get("Messages", [])
            if not batch:
                empty += 1
                continue
            client.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                                for i, m in enumerate(batch)])
            received[index] += len(batch)

    receive_seconds = run_threads(threads, consume)
    sqs.delete_queue(QueueUrl=url)
    return sent / send_seconds, sum(received) / receive_seconds, sent, sum(received)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tern", required=True)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--body-bytes", type=int, default=256)
    args = parser.parse_args()
    port = free_port()
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"{args.messages} messages of {args.body_bytes} B, {args.threads} boto3 threads, 10 per call")
        print("| server | SendMessageBatch msg/s | ReceiveMessage + DeleteMessageBatch msg/s |")
        print("|---|---|---|")
        for name, endpoint in [("ternd", args.tern), ("moto_server", f"http://127.0.0.1:{port}")]:
            send_rate, receive_rate, sent, received = bench(endpoint, args.messages, args.threads, args.body_bytes)
            # Every message must come back; more than once is a duplicate delivery (moto has them
            # under concurrent receivers; ternd must not).
            assert received >= sent, (name, sent, received)
            duplicates = f" ({received - sent} delivered twice)" if received > sent else ""
            print(f"| {name} | {send_rate:,.0f} | {receive_rate:,.0f}{duplicates} |")
    finally:
        moto.kill()  # in-memory and throwaway; it does not always stop on SIGTERM
        moto.wait(10)


if __name__ == "__main__":
    main()
