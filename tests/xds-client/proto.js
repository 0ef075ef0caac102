'use strict';
// Loads helloworld.proto for server.js and client.js.
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const definition = protoLoader.loadSync(path.join(__dirname, 'helloworld.proto'), {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});

module.exports = grpc.loadPackageDefinition(definition).helloworld;
