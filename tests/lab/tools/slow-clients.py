#!/usr/bin/env python3
"""Slow HTTP clients for the flood test (run by the test in the lab's switch namespace).

    slow-clients.py HOST PORT PER_ADDRESS SECONDS SOURCE_ADDRESS...

Keeps PER_ADDRESS connections from each source address to HOST:PORT, each sending a request head
one byte every half second and never finishing it (slowloris); a connection the server closes or
refuses is opened again. Prints "ready" once every connection has been tried, and at the end one
JSON line: connections opened, and how many the server closed or refused. Bounded in count (the
addresses given times PER_ADDRESS) and in time (SECONDS), and only ever aimed at HOST.
"""
import asyncio
import json
import resource
import sys


async def client(host, port, source, stop, stats, started):
    first = True
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            stats["opened"] += 1
            writer.write(b"GET /health HTTP/1.1\r\nHost: agent\r\nX-Slow: ")
            if first:
                first = False
                started.append(1)
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(512), 0.5)
                except asyncio.TimeoutError:
                    writer.write(b"x")
                    await writer.drain()
                    continue
                # an answer (429/503) or the end: the server is done with this connection
                stats["closed_by_server"] += 1
                if data:
                    await asyncio.sleep(0.05)
                break
        except (OSError, ConnectionError):
            stats["failed"] += 1
            if first:
                first = False
                started.append(1)
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.close()


async def main():
    host, port, per_address, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    sources = sys.argv[5:]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(sources) * per_address + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    stop = asyncio.Event()
    stats = {"opened": 0, "closed_by_server": 0, "failed": 0}
    started = []
    tasks = [
        asyncio.create_task(client(host, port, source, stop, stats, started))
        for source in sources
        for _ in range(per_address)
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(started) < len(tasks) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.sleep(max(0.0, deadline - loop.time()))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(stats), flush=True)


asyncio.run(main())
