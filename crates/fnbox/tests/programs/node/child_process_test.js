// Run in a sandbox by crates/fnbox/tests/programs/node.rs, which checks every line it prints.
const cp = require('child_process');

console.log('execSync:', cp.execSync('echo hello from sh | tr a-z A-Z').toString().trim());
console.log('execFileSync:', cp.execFileSync(process.execPath, ['-e', 'console.log(process.pid > 1, process.ppid > 1)']).toString().trim());
try {
  cp.execSync('exit 7', { stdio: 'pipe' });
} catch (e) {
  console.log('execSync failure:', e.status);
}
const r = cp.spawnSync('sh', ['-c', 'cat; echo err >&2'], { input: 'fed through stdin\n' });
console.log('spawnSync:', r.status, r.stdout.toString().trim(), r.stderr.toString().trim());

const child = cp.spawn('sh', ['-c', 'read x; echo "got $x"; echo "to stderr" >&2; exit 5'], { stdio: ['pipe', 'pipe', 'pipe'] });
let out = '', err = '';
child.stdout.on('data', (d) => (out += d));
child.stderr.on('data', (d) => (err += d));
child.stdin.end('spawned input\n');
child.on('close', (code) => {
  console.log('spawn:', code, out.trim(), err.trim());
  const missing = cp.spawn('no-such-program');
  missing.on('error', (e) => {
    console.log('spawn missing:', e.code);
    const forked = cp.fork('/code/forked_child.js', ['arg']);
    forked.on('message', (m) => {
      console.log('fork message:', JSON.stringify(m));
      forked.send('bye');
    });
    forked.on('exit', (code) => {
      console.log('fork exit:', code);
      const killed = cp.spawn('sleep', ['30']);
      killed.on('exit', (code, signal) => console.log('kill:', code, signal));
      setTimeout(() => killed.kill('SIGTERM'), 100);
    });
  });
});
