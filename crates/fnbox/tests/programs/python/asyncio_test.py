# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import asyncio
import time


async def handle(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def client(port, i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    for word in ("hello", f"client {i}"):
        writer.write(word.encode() + b"\n")
        await writer.drain()
        replies.append((await reader.readline()).decode().strip())
    writer.close()
    await writer.wait_closed()
    return replies


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        replies = await asyncio.wait_for(asyncio.gather(*(client(port, i) for i in range(5))), 30)
    print("echo:", replies)
    start = time.monotonic()
    results = await asyncio.gather(*(asyncio.sleep(0.3, result=i) for i in range(10)))
    elapsed = time.monotonic() - start
    # Ten 0.3 s sleeps take 3 s one after the other; together they take about 0.3 s.
    print("gather:", results, "concurrent" if elapsed < 2.0 else f"serial ({elapsed:.2f} s)")
    proc = await asyncio.create_subprocess_exec("sh", "-c", "echo from child; exit 4", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    print("subprocess:", out.decode().strip(), proc.returncode)
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.1)
    except asyncio.TimeoutError:
        print("wait_for: timed out")
    q = asyncio.Queue()
    async def producer():
        for i in range(3):
            await q.put(i)
        await q.put(None)
    async def consumer():
        got = []
        while (item := await q.get()) is not None:
            got.append(item)
        return got
    _, got = await asyncio.gather(producer(), consumer())
    print("queue:", got)
    loop = asyncio.get_running_loop()
    print("executor:", await loop.run_in_executor(None, sum, [1, 2, 3]))


asyncio.run(main())
