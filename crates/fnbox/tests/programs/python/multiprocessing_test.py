# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import multiprocessing as mp
import os


def square(x):
    return x * x


def worker(queue, parent, n):
    queue.put((n, os.getpid() != parent, sum(range(n))))


def add(counter, lock, times):
    for _ in range(times):
        with lock:
            counter.value += 1


if __name__ == "__main__":
    with mp.Pool(4) as pool:
        print("pool map:", pool.map(square, range(10)))
        print("pool apply:", pool.apply_async(sum, ([1, 2, 3],)).get(timeout=30))
    for method in ["fork", "spawn", "forkserver"]:
        ctx = mp.get_context(method)
        q = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(q, os.getpid(), n)) for n in (10, 100, 1000)]
        for p in procs:
            p.start()
        results = sorted(q.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        print(f"{method} process+queue:", results, [p.exitcode for p in procs])
    counter, lock = mp.Value("i", 0), mp.Lock()
    procs = [mp.Process(target=add, args=(counter, lock, 500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    print("shared value:", counter.value)
    a, b = mp.Pipe()
    a.send({"ping": [1, 2]})
    print("pipe:", b.recv())
