// Forked by child_process_test.js: talks to its parent over the IPC channel.
process.send({ from: 'child', argv: process.argv.slice(2), connected: process.connected });
process.on('message', (m) => {
  if (m === 'bye') process.exit(3);
});
