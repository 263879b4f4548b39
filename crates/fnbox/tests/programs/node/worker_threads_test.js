// Run in a sandbox by crates/fnbox/tests/programs/node.rs, which checks every line it prints.
const { Worker } = require('worker_threads');

const shared = new Int32Array(new SharedArrayBuffer(4));
const code = `
const { parentPort, workerData, threadId } = require('worker_threads');
let sum = 0;
for (let i = 1; i <= workerData.n; i++) sum += i;
Atomics.add(workerData.shared, 0, 1);
parentPort.postMessage({ n: workerData.n, sum, threadId: threadId > 0 });
`;
const runs = [10, 1000, 100000].map(
  (n) =>
    new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { n, shared } });
      w.once('message', resolve);
      w.once('error', reject);
    }),
);
Promise.all(runs).then((results) => {
  console.log('results:', JSON.stringify(results));
  console.log('shared counter:', Atomics.load(shared, 0));
  const echo = new Worker(`const { parentPort } = require('worker_threads'); parentPort.on('message', (m) => { parentPort.postMessage(m.toUpperCase()); parentPort.close(); });`, { eval: true });
  echo.on('message', (m) => console.log('echo:', m));
  echo.on('exit', (code) => console.log('worker exit:', code));
  echo.postMessage('ping');
});
