// rabbit-bench: the workloads of tools/compare-peers.sh against RabbitMQ (a durable classic
// queue, persistent messages), with the Go client (amqp091-go). Prints "RESULT <messages per second>".
//
//	rabbit-bench -mode publish -conns 4 -batch 1000 -count 1000000 -size 1024
//	rabbit-bench -mode consume -conns 4 -batch 1000 -count 1000000
//	rabbit-bench -mode single  -conns 64 -count 200000 -size 1024
//
// publish: publisher confirms on; a batch of publishes, then wait for all its confirms (the
// broker confirms a persistent message once it is fsynced). consume: prefetch = batch, manual
// acks, one "multiple" ack per batch. single: one publish, wait for its confirm, repeat.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "server URL")
	mode := flag.String("mode", "publish", "publish, consume or single")
	conns := flag.Int("conns", 4, "connections")
	batch := flag.Int("batch", 1000, "messages per batch")
	count := flag.Int("count", 100000, "messages in total")
	size := flag.Int("size", 1024, "body bytes")
	queue := flag.String("queue", "bench", "queue name")
	flag.Parse()

	setup, err := amqp.Dial(*url)
	check(err)
	ch, err := setup.Channel()
	check(err)
	if *mode != "consume" {
		_, _ = ch.QueueDelete(*queue, false, false, false)
	}
	_, err = ch.QueueDeclare(*queue, true, false, false, false, nil)
	check(err)
	setup.Close()

	body := make([]byte, *size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	per := *count / *conns
	var done int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := amqp.Dial(*url)
			check(err)
			defer conn.Close()
			ch, err := conn.Channel()
			check(err)
			ctx := context.Background()
			msg := amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}
			switch *mode {
			case "publish", "single":
				check(ch.Confirm(false))
				confirms := ch.NotifyPublish(make(chan amqp.Confirmation, *batch+1))
				step := *batch
				if *mode == "single" {
					step = 1
				}
				for sent := 0; sent < per; sent += step {
					n := minInt(step, per-sent)
					for i := 0; i < n; i++ {
						check(ch.PublishWithContext(ctx, "", *queue, false, false, msg))
					}
					for i := 0; i < n; i++ {
						if confirm := <-confirms; !confirm.Ack {
							check(fmt.Errorf("publish nacked"))
						}
					}
					atomic.AddInt64(&done, int64(n))
				}
			case "consume":
				check(ch.Qos(*batch, 0, false))
				deliveries, err := ch.Consume(*queue, "", false, false, false, false, nil)
				check(err)
				got := 0
				var last amqp.Delivery
				for atomic.LoadInt64(&done) < int64(*count) {
					select {
					case d := <-deliveries:
						got++
						last = d
						if got == *batch {
							check(d.Ack(true))
							atomic.AddInt64(&done, int64(got))
							got = 0
						}
					case <-time.After(200 * time.Millisecond):
						// The tail: fewer than a batch arrived and nothing more came; ack what we hold.
						if got > 0 {
							check(last.Ack(true))
							atomic.AddInt64(&done, int64(got))
							got = 0
						}
					}
				}
			default:
				check(fmt.Errorf("unknown mode %q", *mode))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	fmt.Printf("RESULT %.0f\n", float64(atomic.LoadInt64(&done))/elapsed)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "rabbit-bench:", err)
		os.Exit(1)
	}
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}
