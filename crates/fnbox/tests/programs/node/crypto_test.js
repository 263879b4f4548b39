// Run in a sandbox by crates/fnbox/tests/programs/node.rs, which checks every line it prints.
const crypto = require('crypto');

console.log('sha256:', crypto.createHash('sha256').update('abc').digest('hex'));
console.log('hmac:', crypto.createHmac('sha256', 'key').update('The quick brown fox jumps over the lazy dog').digest('hex'));
const a = crypto.randomBytes(32), b = crypto.randomBytes(32);
console.log('randomBytes:', a.length, !a.equals(b));
console.log('randomUUID:', /^[0-9a-f-]{36}$/.test(crypto.randomUUID()));
for (const [type, opts, alg] of [['rsa', { modulusLength: 2048 }, 'sha256'], ['ec', { namedCurve: 'P-256' }, 'sha256'], ['ed25519', {}, null]]) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync(type, opts);
  const data = Buffer.from('signed by fnbox');
  const sig = crypto.sign(alg, data, privateKey);
  console.log(`${type} sign/verify:`, crypto.verify(alg, data, publicKey, sig), crypto.verify(alg, Buffer.from('tampered'), publicKey, sig));
}
const key = crypto.scryptSync('password', 'salt', 32);
const iv = Buffer.alloc(12, 1);
const c = crypto.createCipheriv('aes-256-gcm', key, iv);
const enc = Buffer.concat([c.update('secret message'), c.final()]);
const tag = c.getAuthTag();
const dch = crypto.createDecipheriv('aes-256-gcm', key, iv);
dch.setAuthTag(tag);
console.log('aes-256-gcm:', Buffer.concat([dch.update(enc), dch.final()]).toString());
console.log('pbkdf2:', crypto.pbkdf2Sync('password', 'salt', 1, 20, 'sha1').toString('hex'));
crypto.randomFill(Buffer.alloc(16), (err, buf) => console.log('async randomFill:', err, buf.length));
