// Run in a sandbox by crates/fnbox/tests/programs/node.rs, which checks every line it prints.
const fs = require('fs');
const fsp = require('fs/promises');
const path = require('path');
const { pipeline } = require('stream/promises');

const d = '/tmp/node-fs';
fs.mkdirSync(path.join(d, 'sub'), { recursive: true });
fs.writeFileSync(path.join(d, 'a.txt'), 'alpha');
fs.appendFileSync(path.join(d, 'a.txt'), '-beta');
console.log('read:', fs.readFileSync(path.join(d, 'a.txt'), 'utf8'));
const st = fs.statSync(path.join(d, 'a.txt'));
console.log('stat:', st.size, st.isFile(), (st.mode & 0o777).toString(8));
fs.renameSync(path.join(d, 'a.txt'), path.join(d, 'sub', 'b.txt'));
console.log('renamed:', fs.readdirSync(path.join(d, 'sub')), fs.existsSync(path.join(d, 'a.txt')));
fs.symlinkSync('sub/b.txt', path.join(d, 'link'));
console.log('symlink:', fs.readlinkSync(path.join(d, 'link')), fs.realpathSync(path.join(d, 'link')), fs.lstatSync(path.join(d, 'link')).isSymbolicLink());
fs.unlinkSync(path.join(d, 'link'));
console.log('unlinked:', fs.existsSync(path.join(d, 'link')));
try {
  fs.readFileSync(path.join(d, 'missing'));
} catch (e) {
  console.log('missing:', e.code);
}

(async () => {
  await fsp.writeFile(path.join(d, 'p.json'), JSON.stringify({ x: 1, y: [2, 3] }));
  console.log('promises read:', JSON.parse(await fsp.readFile(path.join(d, 'p.json'), 'utf8')));
  const entries = await fsp.readdir(d, { withFileTypes: true });
  console.log('promises readdir:', entries.map((e) => `${e.name}:${e.isDirectory() ? 'dir' : 'file'}`).sort());
  await fsp.rename(path.join(d, 'p.json'), path.join(d, 'q.json'));
  const s = await fsp.stat(path.join(d, 'q.json'));
  console.log('promises stat:', s.size);
  const fh = await fsp.open(path.join(d, 'q.json'), 'r+');
  await fh.write('{"x":9', 0);
  const { bytesRead, buffer } = await fh.read(Buffer.alloc(6), 0, 6, 0);
  await fh.close();
  console.log('file handle:', bytesRead, buffer.toString());
  await fsp.unlink(path.join(d, 'q.json'));
  await fsp.access(path.join(d, 'q.json')).catch((e) => console.log('promises unlink:', e.code));
  const big = 'line\n'.repeat(100000);
  await fsp.writeFile(path.join(d, 'big.txt'), big);
  await pipeline(fs.createReadStream(path.join(d, 'big.txt')), fs.createWriteStream(path.join(d, 'copy.txt')));
  console.log('streams:', (await fsp.readFile(path.join(d, 'copy.txt'), 'utf8')) === big);
  await fsp.copyFile(path.join(d, 'copy.txt'), path.join(d, 'copy2.txt'));
  await fsp.chmod(path.join(d, 'copy2.txt'), 0o600);
  console.log('copy+chmod:', ((await fsp.stat(path.join(d, 'copy2.txt'))).mode & 0o777).toString(8));
  const watcher = fs.watch(path.join(d, 'sub'));
  const event = new Promise((resolve) => watcher.once('change', (type, name) => resolve(`${type} ${name}`)));
  await fsp.writeFile(path.join(d, 'sub', 'watched.txt'), 'w');
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(() => r('no event within 10 s'), 10000)));
  console.log('watch:', await Promise.race([event, timeout]));
  clearTimeout(timer);
  watcher.close();
  const tmp = await fsp.mkdtemp('/tmp/node-');
  console.log('mkdtemp:', tmp.startsWith('/tmp/node-'));
  await fsp.rm(d, { recursive: true });
  await fsp.rmdir(tmp);
  console.log('removed:', fs.existsSync(d), fs.existsSync(tmp));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
