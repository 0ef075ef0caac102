'use strict';
// A long-running proxyless xDS client. Reads one JSON command per line on stdin and answers one JSON line on
// stdout. One channel per target, created on first use and kept, so the client keeps its xDS watches.
//   {"cmd":"call","target":"xds:///greeter","count":200[,"deadlineMs":2000]}
//     -> {"ok":N,"failed":M,"byBackend":{"a":..},"errors":{"14 UNAVAILABLE: ...":k}}
//   {"cmd":"ping"} -> {"pong":true}
//   {"cmd":"close"} -> closes every channel and exits
// The bootstrap file comes from GRPC_XDS_BOOTSTRAP. Calls run one after another, as a simple app would.
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
require('@grpc/grpc-js-xds').register();
const helloworld = require('./proto');

const clients = new Map();

function clientFor(target) {
  let client = clients.get(target);
  if (!client) {
    client = new helloworld.Greeter(target, grpc.credentials.createInsecure());
    clients.set(target, client);
  }
  return client;
}

function callOnce(client, deadlineMs) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + deadlineMs);
    client.SayHello({ name: 'conformance' }, { deadline }, (err, reply) => {
      if (err) {
        resolve({ error: `${err.code} ${grpc.status[err.code]}: ${err.details}` });
      } else {
        resolve({ backend: reply.message });
      }
    });
  });
}

async function run(command) {
  switch (command.cmd) {
    case 'ping':
      return { pong: true };
    case 'call': {
      const client = clientFor(command.target);
      const count = Math.max(1, Math.min(Number(command.count) || 1, 10000));
      const deadlineMs = Math.max(50, Math.min(Number(command.deadlineMs) || 2000, 60000));
      const result = { ok: 0, failed: 0, byBackend: {}, errors: {} };
      for (let i = 0; i < count; i++) {
        const r = await callOnce(client, deadlineMs);
        if (r.error) {
          result.failed++;
          result.errors[r.error] = (result.errors[r.error] || 0) + 1;
        } else {
          result.ok++;
          result.byBackend[r.backend] = (result.byBackend[r.backend] || 0) + 1;
        }
      }
      return result;
    }
    case 'close':
      for (const c of clients.values()) {
        c.close();
      }
      process.exit(0);
      return {};
    default:
      return { error: `unknown command "${command.cmd}"` };
  }
}

// Commands run strictly in order: the next line waits for the previous answer.
let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim().length === 0) {
    return;
  }
  queue = queue.then(async () => {
    let answer;
    try {
      answer = await run(JSON.parse(line));
    } catch (err) {
      answer = { error: String(err && err.message ? err.message : err) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  });
});
lines.on('close', () => queue.then(() => process.exit(0)));
