// nats-bench: the workloads of tools/compare-peers.sh against NATS JetStream (file storage),
// with the Go client (nats.go). Prints one line: "RESULT <messages per second>".
//
//	nats-bench -mode publish -conns 4 -batch 1000 -count 1000000 -size 1024
//	nats-bench -mode consume -conns 4 -batch 1000 -count 1000000
//	nats-bench -mode single  -conns 64 -count 200000 -size 1024
//
// publish: asynchronous publishes, waiting for every ack of a batch before the next batch
// (publisher confirms). consume: pull consumer, Fetch(batch), Ack each message, then a round
// trip (Flush) so the acks reached the server before the next fetch. single: one synchronous
// publish at a time per connection (wait for the ack).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("url", nats.DefaultURL, "server URL")
	mode := flag.String("mode", "publish", "publish, consume or single")
	conns := flag.Int("conns", 4, "connections")
	batch := flag.Int("batch", 1000, "messages per batch (publish, consume)")
	count := flag.Int("count", 100000, "messages in total")
	size := flag.Int("size", 1024, "body bytes")
	stream := flag.String("stream", "BENCH", "stream name (its subjects: the lower-cased name, then .>)")
	flag.Parse()
	prefix := strings.ToLower(*stream)

	setup, err := nats.Connect(*url)
	check(err)
	js, err := setup.JetStream()
	check(err)
	if *mode != "consume" {
		_ = js.DeleteStream(*stream)
		_, err = js.AddStream(&nats.StreamConfig{Name: *stream, Subjects: []string{prefix + ".>"}, Storage: nats.FileStorage})
		check(err)
	}
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
		go func(c int) {
			defer wg.Done()
			nc, err := nats.Connect(*url)
			check(err)
			defer nc.Close()
			js, err := nc.JetStream(nats.PublishAsyncMaxPending(*batch * 2))
			check(err)
			subject := fmt.Sprintf("%s.%d", prefix, c)
			switch *mode {
			case "publish":
				for sent := 0; sent < per; sent += *batch {
					n := minInt(*batch, per-sent)
					futures := make([]nats.PubAckFuture, 0, n)
					for i := 0; i < n; i++ {
						f, err := js.PublishAsync(subject, body)
						check(err)
						futures = append(futures, f)
					}
					for _, f := range futures {
						select {
						case <-f.Ok():
						case err := <-f.Err():
							check(err)
						}
					}
					atomic.AddInt64(&done, int64(n))
				}
			case "single":
				for i := 0; i < per; i++ {
					_, err := js.Publish(subject, body)
					check(err)
					atomic.AddInt64(&done, 1)
				}
			case "consume":
				sub, err := js.PullSubscribe(prefix+".>", prefix+"-consumer", nats.BindStream(*stream), nats.AckExplicit())
				check(err)
				for atomic.LoadInt64(&done) < int64(*count) {
					msgs, err := sub.Fetch(*batch, nats.MaxWait(500*time.Millisecond))
					if err == nats.ErrTimeout {
						if atomic.LoadInt64(&done) >= int64(*count) {
							return
						}
						continue
					}
					check(err)
					for _, m := range msgs {
						check(m.Ack())
					}
					check(nc.Flush())
					atomic.AddInt64(&done, int64(len(msgs)))
				}
			default:
				check(fmt.Errorf("unknown mode %q", *mode))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	fmt.Printf("RESULT %.0f\n", float64(atomic.LoadInt64(&done))/elapsed)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats-bench:", err)
		os.Exit(1)
	}
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}
