'use strict';
// Starts one gRPC Greeter server per argument NAME:PORT on 127.0.0.1; each answers SayHello with its NAME.
// Prints "ready" once every server listens, and exits when stdin closes (so it never outlives the test).
// Usage: node server.js a:50061 b:50062
const grpc = require('@grpc/grpc-js');
const helloworld = require('./proto');

const specs = process.argv.slice(2).map((arg) => {
  const m = /^([A-Za-z0-9_.-]+):(\d+)$/.exec(arg);
  if (!m) {
    console.error(`bad argument "${arg}": expected NAME:PORT, e.g. a:50061`);
    process.exit(2);
  }
  return { name: m[1], port: Number(m[2]) };
});
if (specs.length === 0) {
  console.error('usage: node server.js NAME:PORT [NAME:PORT...]');
  process.exit(2);
}

const servers = [];

function listen({ name, port }) {
  const server = new grpc.Server();
  server.addService(helloworld.Greeter.service, {
    SayHello: (call, callback) => callback(null, { message: name }),
  });
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) {
        reject(new Error(`${name}: cannot listen on 127.0.0.1:${port}: ${err.message}`));
      } else {
        resolve();
      }
    });
  });
}

function shutdown(code) {
  for (const s of servers) {
    s.forceShutdown();
  }
  process.exit(code);
}

process.stdin.on('end', () => shutdown(0));
process.stdin.on('close', () => shutdown(0));
process.stdin.resume();

Promise.all(specs.map(listen)).then(
  () => console.log('ready'),
  (err) => {
    console.error(err.message);
    shutdown(1);
  });
