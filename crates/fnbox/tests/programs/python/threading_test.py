# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import threading
from concurrent.futures import ThreadPoolExecutor

lock = threading.Lock()
counter = 0
names = {}


def work(i):
    global counter
    for _ in range(20000):
        with lock:
            counter += 1
    names[i] = threading.current_thread().name


threads = [threading.Thread(target=work, args=(i,), name=f"worker-{i}") for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=60)
print("counter:", counter)
print("threads:", sorted(names.values()))
print("alive after join:", [t.is_alive() for t in threads].count(True))

with ThreadPoolExecutor(max_workers=4) as ex:
    print("executor:", list(ex.map(lambda x: x * x, range(8))))

barrier = threading.Barrier(3)
order = []
cond = threading.Condition()


def meet(i):
    barrier.wait(timeout=30)
    with cond:
        order.append(i)
        cond.notify_all()


ts = [threading.Thread(target=meet, args=(i,)) for i in range(3)]
for t in ts:
    t.start()
with cond:
    cond.wait_for(lambda: len(order) == 3, timeout=30)
for t in ts:
    t.join()
print("barrier:", sorted(order))
ev = threading.Event()
threading.Timer(0.1, ev.set).start()
print("event:", ev.wait(timeout=30))
local = threading.local()
local.x = "main"
seen = []
t = threading.Thread(target=lambda: seen.append(getattr(local, "x", "unset")))
t.start()
t.join()
print("thread-local:", local.x, seen)
