-- wrk script: durable single-message sends of 1 KiB bodies to one queue.
--   wrk -t2 -c64 -d10s -s tools/send.lua http://127.0.0.1:7080/queues/bench/messages
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"message": "' .. string.rep("x", 1024) .. '"}'
