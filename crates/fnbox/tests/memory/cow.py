# A parent with 200 MB of live data forks N multiprocessing workers that only read it.
# Copy-on-write keeps the sandbox's memory close to the parent's alone.
import multiprocessing
import sys

DATA = b"x" * (200 << 20)


def reader(i):
    # Reads every page of the parent's data; writes nothing to it.
    return DATA.count(b"y") + i


if __name__ == "__main__":
    n = int(sys.argv[1])
    multiprocessing.set_start_method("fork")
    if n:
        with multiprocessing.Pool(n) as pool:
            print(sum(pool.map(reader, range(n), chunksize=1)))
    else:
        print(reader(0))
